"""Streaming `multipart/form-data` reader: files go straight to disk under generated names, and each part's
size limit is enforced while the body arrives (the request is abandoned at the first byte over a limit)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from .errors import ApiError

TEXT_FIELD_LIMIT_BYTES = 64 * 1024
MAX_PARTS = 32


@dataclass
class UploadedFile:
    field: str
    path: Path  # <dest dir>/<field>.upload; the client's file name is never used on disk
    size: int = 0
    sha256: str = ""


@dataclass
class _Part:
    name: str = ""
    is_file: bool = False
    header_field: bytes = b""
    header_value: bytes = b""
    disposition: bytes = b""
    text: bytearray = field(default_factory=bytearray)
    upload: UploadedFile | None = None
    out: IO[bytes] | None = None
    hasher: hashlib._Hash | None = None


class MultipartReader:
    """Reads one multipart body. `file_limits` names the accepted file fields and their byte limits."""

    def __init__(self, dest_dir: Path, file_limits: Mapping[str, int]):
        self.dest_dir = dest_dir
        self.file_limits = dict(file_limits)
        self.fields: dict[str, str] = {}
        self.files: dict[str, UploadedFile] = {}
        self._part = _Part()
        self._parts = 0

    async def read(self, request: Request) -> tuple[dict[str, str], dict[str, UploadedFile]]:
        _, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise ApiError("validation_error", "multipart/form-data body without a boundary")
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": self._header_field, "on_header_value": self._header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished,
        })
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if parser.state == MultipartState.END:  # the closing boundary: the rest is never read
                    break
            else:
                if parser.state != MultipartState.END:
                    raise ApiError("validation_error", "truncated multipart body: the closing boundary is missing")
            parser.finalize()
        except ApiError:
            raise
        except ValueError as e:  # python-multipart's parse errors
            raise ApiError("validation_error", f"malformed multipart body: {e}") from e
        finally:
            if self._part.out is not None:
                self._part.out.close()
        return self.fields, self.files

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise ApiError("validation_error", f"more than {MAX_PARTS} form parts")
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        if self._part.header_field.lower() == b"content-disposition":
            self._part.disposition = self._part.header_value
        self._part.header_field, self._part.header_value = b"", b""

    def _headers_finished(self) -> None:
        part = self._part
        _, options = parse_options_header(part.disposition)
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        part.is_file = b"filename" in options
        if not part.name:
            raise ApiError("validation_error", "a form part has no name")
        if part.name in self.fields or part.name in self.files:
            raise ApiError("validation_error", f"the field {part.name!r} was sent twice")
        if part.is_file:
            if part.name not in self.file_limits:
                files = ", ".join(self.file_limits)
                raise ApiError("unknown_field", f"{part.name!r} is not a file field (file fields: {files})")
            part.upload = UploadedFile(part.name, self.dest_dir / f"{part.name}.upload")
            part.out = part.upload.path.open("wb")
            part.hasher = hashlib.sha256()

    def _data(self, data: bytes, start: int, end: int) -> None:
        part, chunk = self._part, data[start:end]
        if part.upload is None:
            part.text += chunk
            if len(part.text) > TEXT_FIELD_LIMIT_BYTES:
                raise ApiError("payload_too_large", f"the field {part.name!r} is over {TEXT_FIELD_LIMIT_BYTES} bytes")
            return
        part.upload.size += len(chunk)
        limit = self.file_limits[part.name]
        if part.upload.size > limit:
            raise ApiError("payload_too_large", f"{part.name} is larger than the limit of {limit} bytes")
        assert part.out is not None and part.hasher is not None
        part.out.write(chunk)
        part.hasher.update(chunk)

    def _end(self) -> None:
        part = self._part
        if part.upload is not None:
            assert part.out is not None and part.hasher is not None
            part.out.close()
            part.out = None
            part.upload.sha256 = part.hasher.hexdigest()
            self.files[part.name] = part.upload
        elif part.name:
            try:
                self.fields[part.name] = part.text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ApiError("validation_error", f"the field {part.name!r} is not UTF-8 text") from e
