"""HTTP Range requests on stored videos, per RFC 9110 §14: a header that does not parse, uses another unit or
asks for too many ranges is ignored (the whole file, 200); one whose ranges all start past the end answers
416 with `Content-Range: bytes */<size>`; anything else is served as the ranges asked for."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from .errors import ApiError

MAX_RANGES = 16  # more are ignored (RFC 9110 lets a server ignore a Range it finds abusive)
MAX_POSITION_DIGITS = 30
RANGE_SPEC = re.compile(r"(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """[(first, last inclusive), ...] of the satisfiable ranges; None when the header is absent or to be
    ignored. ApiError `range_not_satisfiable` (416) when no range can be satisfied."""
    if not header or not header.isascii():
        return None
    unit, _, range_set = header.partition("=")
    if unit.strip().lower() != "bytes" or not range_set.strip():
        return None
    specs = [spec.strip() for spec in range_set.split(",")]
    if len(specs) > MAX_RANGES:
        return None
    satisfiable = []
    for spec in specs:
        match = RANGE_SPEC.fullmatch(spec)
        if match is None or not (match[1] or match[2]) or max(map(len, match.groups())) > MAX_POSITION_DIGITS:
            return None  # a syntax error anywhere: the whole header is ignored
        if match[1]:
            first = int(match[1])
            if match[2] and int(match[2]) < first:
                return None  # last-pos before first-pos: invalid
            if first < size:
                satisfiable.append((first, min(int(match[2]), size - 1) if match[2] else size - 1))
        elif int(match[2]) > 0 and size > 0:  # suffix: the last N bytes
            satisfiable.append((max(size - int(match[2]), 0), size - 1))
    if not satisfiable:
        raise ApiError("range_not_satisfiable", f"no requested range lies within the {size} bytes of the video",
                       headers={"Content-Range": f"bytes */{size}"})
    return satisfiable


class RangedFileResponse(FileResponse):
    """A FileResponse that serves exactly the ranges `parse_range` accepted (Starlette's own Range parsing
    would answer 400 for a header HTTP says to ignore)."""

    def __init__(self, path: Path, ranges: list[tuple[int, int]] | None, **kwargs):
        super().__init__(path, **kwargs)
        self.ranges = ranges

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(name, value) for name, value in scope["headers"] if name != b"range"]
        if self.ranges:
            canonical = "bytes=" + ",".join(f"{first}-{last}" for first, last in self.ranges)
            headers.append((b"range", canonical.encode()))
        await super().__call__({**scope, "headers": headers}, receive, send)
