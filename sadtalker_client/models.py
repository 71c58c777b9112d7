"""Typed views of the service's JSON: a job (`GET /v1/jobs/{id}`), one event of its stream, a preflight answer.

Parsing is lenient about fields it does not know (newer servers add some) and keeps the raw dict in `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import JobFailed

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith("Z"):  # fromisoformat accepts "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Progress:
    """Where a job is. `percent` is overall (0-100); frames and ETA appear once rendering has started."""

    stage: str | None = None
    percent: float = 0.0
    frames_done: int | None = None
    frames_total: int | None = None
    eta_s: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Progress:
        data = data or {}
        return cls(
            stage=data.get("stage"),
            percent=float(data.get("percent") or 0.0),
            frames_done=_opt_int(data.get("frames_done")),
            frames_total=_opt_int(data.get("frames_total")),
            eta_s=_opt_float(data.get("eta_s")),
        )


@dataclass(frozen=True)
class Result:
    """The finished video. `video_url` (and `poster_url`, a JPEG of its middle frame) is a storage URL for
    S3/Supabase, or the API's own link signed for a limited time: either loads without the API key."""

    video_url: str | None
    duration_s: float | None = None
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    face_detector: str | None = None
    storage: str | None = None
    poster_url: str | None = None
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(
            video_url=data.get("video_url"),
            duration_s=_opt_float(data.get("duration_s")),
            frames=_opt_int(data.get("frames")),
            width=_opt_int(data.get("width")),
            height=_opt_int(data.get("height")),
            bytes=_opt_int(data.get("bytes")),
            face_detector=data.get("face_detector"),
            storage=data.get("storage"),
            poster_url=data.get("poster_url"),
            seed=_opt_int(data.get("seed")),
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable `code` (e.g. `no_face_detected`) and a human sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class Job:
    """One job as the service reports it."""

    id: str
    status: str  # queued | running | succeeded | failed | canceled
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    progress: Progress
    queue_position: int | None
    options: dict[str, Any]
    metadata: dict[str, Any]
    webhook_url: str | None
    result: Result | None
    error: JobError | None
    links: dict[str, str]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def raise_for_error(self) -> Job:
        """Returns the job, or raises JobFailed (code = the job's error code) when it failed or was canceled."""
        if self.status in ("failed", "canceled"):
            raise JobFailed(self)
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        result, error = data.get("result"), data.get("error")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            created_at=_parse_time(data.get("created_at")),
            started_at=_parse_time(data.get("started_at")),
            finished_at=_parse_time(data.get("finished_at")),
            updated_at=_parse_time(data.get("updated_at")),
            progress=Progress.from_dict(data.get("progress")),
            queue_position=_opt_int(data.get("queue_position")),
            options=dict(data.get("options") or {}),
            metadata=dict(data.get("metadata") or {}),
            webhook_url=data.get("webhook_url"),
            result=Result.from_dict(result) if result else None,
            error=JobError(str(error.get("code", "")), str(error.get("message", ""))) if error else None,
            links=dict(data.get("links") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class RunResult:
    """What `Client.run()` gives back: the finished job and where its video was saved."""

    job: Job
    video: Path


@dataclass(frozen=True)
class JobEvent:
    """One Server-Sent Event of `GET /v1/jobs/{id}/events`: `event` names the change, `job` is the job then."""

    id: str | None
    event: str  # job.queued | job.started | job.progress | job.succeeded | job.failed | job.canceled
    job: Job


@dataclass(frozen=True)
class Problem:
    """A preflight finding: a stable error code, what is wrong, and what to try."""

    code: str
    message: str
    suggestion: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(str(data.get("code", "")), str(data.get("message", "")), data.get("suggestion"))


@dataclass(frozen=True)
class Preflight:
    """The answer of `POST /v1/preflight`: would a job with these inputs run? (`ok`), and what was found."""

    ok: bool
    face: dict[str, Any] | None  # box [x1,y1,x2,y2] px, score, detector, faces, preview (data: URL)
    image: dict[str, Any] | None  # width, height, format
    audio: dict[str, Any] | None  # duration_s, sample_rate, channels
    errors: list[Problem]
    warnings: list[Problem]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preflight:
        return cls(
            ok=bool(data.get("ok")),
            face=data.get("face"),
            image=data.get("image"),
            audio=data.get("audio"),
            errors=[Problem.from_dict(p) for p in data.get("errors") or []],
            warnings=[Problem.from_dict(p) for p in data.get("warnings") or []],
            raw=data,
        )
