"""Job states, the job record with its typed parts (options, progress, failure) and its public JSON form
(CONTRACTS.md, "Job JSON")."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from .render import RenderOptions

# Render stages in order, with the share of the overall percent each one covers (sums to 100).
STAGES = ("preprocess", "audio_to_coeff", "render", "enhance", "encode", "upload")
STAGE_WEIGHTS = {"preprocess": 8, "audio_to_coeff": 12, "render": 60, "enhance": 10, "encode": 6, "upload": 4}
RESULT_FIELDS = ("duration_s", "frames", "width", "height", "bytes", "face_detector", "storage", "seed")


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stage_percent(stage: str, done: int, total: int) -> float:
    """Overall percent (0..100) when `done` of `total` units of `stage` are finished."""
    before = sum(STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
    fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return round(before + STAGE_WEIGHTS[stage] * fraction, 2)


@dataclass
class Progress:
    """Where a running job is; `eta_s` is None while it cannot be measured yet (see jobs.progress)."""

    stage: str | None = None
    percent: float = 0.0
    frames_done: int | None = None
    frames_total: int | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class Failure:
    """Why a job failed or was canceled: a stable `code` clients branch on and a human message."""

    code: str
    message: str


@dataclass
class Job:
    """One job record. Times are Unix seconds; `inputs` holds local file paths (never client file names)."""

    id: str
    owner: str  # a hash of the API key that created it
    options: RenderOptions
    inputs: dict[str, str]
    status: JobStatus = JobStatus.QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    progress: Progress = field(default_factory=Progress)
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_events: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None  # + "key" and "url" of the stored video
    error: Failure | None = None
    attempts: int = 0
    origin: str | None = None  # base URL of the request that created it (for links in webhooks)
    unpublished: str | None = None  # the rendered MP4 kept on disk after its upload failed (retry-upload)

    def touch(self) -> None:
        self.updated_at = time.time()

    @classmethod
    def from_record(cls, fields: dict[str, Any]) -> Job:
        """The inverse of `dataclasses.asdict(job)` (how the store keeps it)."""
        fields = dict(fields)
        fields["status"] = JobStatus(fields["status"])
        fields["options"] = RenderOptions.from_record(fields.get("options") or {})
        fields["progress"] = Progress(**(fields.get("progress") or {}))
        fields["error"] = Failure(**fields["error"]) if fields.get("error") else None
        return cls(**fields)

    def to_json(self, base_url: str | None = None, queue_position: int | None = None,
                video_url: str | None = None, poster_url: str | None = None) -> dict[str, Any]:
        """The public form; `base_url` makes links and the local video URL absolute; `video_url` and
        `poster_url` (fresh presigned URLs, or signed paths made absolute here) replace the stored ones."""
        base = (base_url or self.origin or "").rstrip("/")
        video_url, poster_url = (base + url if url and url.startswith("/") else url for url in (video_url, poster_url))
        path = f"/v1/jobs/{self.id}"
        return {
            "id": self.id,
            "object": "job",
            "status": self.status.value,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "updated_at": iso(self.updated_at),
            "progress": asdict(self.progress),
            "queue_position": queue_position if self.status is JobStatus.QUEUED else None,
            "attempts": self.attempts,  # 2: it was running when the service stopped, and ran again
            "options": asdict(self.options),
            "metadata": self.metadata,
            "webhook_url": self.webhook_url,
            "result": self._result_json(video_url or base + path + "/video", poster_url),
            "error": asdict(self.error) if self.error else None,
            "links": {
                "self": base + path,
                "video": base + path + "/video",
                "cancel": base + path + "/cancel",
                "events": base + path + "/events",
            },
        }

    def _result_json(self, video_url: str, poster_url: str | None = None) -> dict[str, Any] | None:
        """Only a succeeded job has a result (a render waiting for its upload has none yet)."""
        if self.result is None or self.status is not JobStatus.SUCCEEDED:
            return None
        out: dict[str, Any] = {"video_url": video_url, "poster_url": poster_url or self.result.get("poster_url")}
        out.update({name: self.result.get(name) for name in RESULT_FIELDS if name in self.result})
        return out
