"""The job manager's configuration, the callables `api_app` hands it, and a validated submission."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .models import Job
from .render import RenderOptions

PublishFn = Callable[[Job, Path], Awaitable[dict[str, Any]]]  # stores the MP4 (retrying): key, url, storage, bytes
VideoUrlFn = Callable[[Job], str | None]  # a succeeded job's current video URL (None: the stored/local one)
DiscardFn = Callable[[Job], None]  # blocking: forgets a deleted job elsewhere (its stored video, webhooks)
EventFn = Callable[[str, Job], Awaitable[None]]  # job.started, job.progress, job.succeeded, ...
StageFn = Callable[[str, float], None]  # (stage, seconds spent in it), for metrics
FinishFn = Callable[[Job], None]  # called once per job reaching a terminal state


@dataclass(frozen=True)
class ManagerConfig:
    work_dir: Path  # inputs/<job id>/ and renders/<job id>/ live here
    max_queue: int = 100
    job_timeout_s: float = 480.0
    shutdown_grace_s: float = 30.0
    retention_s: float = 0.0  # 0 keeps finished jobs forever
    idempotency_ttl_s: float = 24 * 3600.0
    max_attempts: int = 2  # a job that was running when the process died runs once more
    progress_save_interval_s: float = 1.0  # progress is persisted at most this often (and at stage changes)
    public_base_url: str | None = None
    keep_inputs: bool = False  # keep inputs/<job id>/ after the job ends (removed with the job)
    model_reload_s: float = 30.0  # a worker whose models were unavailable tries again this often; 0: never
    min_free_bytes: int = 0  # below this much free space in the work folder, submissions are refused
    save_retry_s: float = 5.0  # a record whose save failed (disk full) is saved again this often


@dataclass
class ManagerHooks:
    publish: PublishFn | None = None
    discard: DiscardFn | None = None
    on_event: EventFn | None = None
    on_stage: StageFn | None = None
    on_finish: FinishFn | None = None
    video_url: VideoUrlFn | None = None
    poster_url: VideoUrlFn | None = None  # a succeeded job's poster URL (None: the one stored with the result)


@dataclass
class NewJob:
    """A validated submission; `inputs` are files already under `manager.input_dir(id)`."""

    id: str
    owner: str
    options: RenderOptions
    inputs: dict[str, str]
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_events: list[str] = field(default_factory=list)
    origin: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
