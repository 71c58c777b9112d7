"""What the sync and async clients share: the request forms, response checks and event parsing (no I/O here)."""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from .errors import ApiError, ConnectionFailed
from .models import Job, JobEvent
from .sse import ServerSentEvent

DEFAULT_URL = "http://127.0.0.1:8888"
SSE_READ_TIMEOUT_S = 60.0  # the server sends a heartbeat well within this; a silent minute means a dead link
RECONNECT_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)  # event stream reconnects before giving up
STREAM_ENDED_MESSAGE = "the event stream keeps ending before the job does"
FILE_FIELDS = ("image", "audio", "ref_eyeblink", "ref_pose")
RETRY_STATUSES = (429, 503)  # queue full; shutting down, models loading: another try (or instance) may work
DEFAULT_RETRIES = 4
MAX_RETRY_WAIT_S = 60.0  # a longer Retry-After is cut to this
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # without Retry-After


@dataclass(frozen=True)
class RetryPolicy:
    """How 429/503 answers are retried: at most `retries` more tries, each after the answer's Retry-After
    (capped at `max_wait_s`), else after a growing backoff. Submissions carry an Idempotency-Key, so a retry
    never makes a second job."""

    retries: int = DEFAULT_RETRIES
    max_wait_s: float = MAX_RETRY_WAIT_S

    def delay_s(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before try `attempt + 1` (`attempt` counts from 1), or None: do not retry."""
        if response.status_code not in RETRY_STATUSES or attempt > self.retries:
            return None
        after = _retry_after_s(response.headers.get("retry-after"))
        if after is None:
            after = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
        return min(max(after, 0.0), self.max_wait_s)


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def new_idempotency_key() -> str:
    return "sadtalker-client-" + uuid.uuid4().hex


@dataclass(frozen=True)
class JobInputs:
    """The inputs of `POST /v1/jobs` and `POST /v1/preflight`: a file or a URL for each medium, and options.

    Options left None take the server's defaults."""

    image: str | Path | None = None
    audio: str | Path | None = None
    image_url: str | None = None
    audio_url: str | None = None
    ref_eyeblink: str | Path | None = None  # a video whose blinks are copied
    ref_pose: str | Path | None = None  # a video whose head motion is copied
    ref_eyeblink_url: str | None = None
    ref_pose_url: str | None = None
    preprocess: str | None = None  # crop | extcrop | resize | full | extfull
    still: bool | None = None
    enhancer: str | None = None  # none | gfpgan
    size: int | None = None  # 256 | 512
    pose_style: int | None = None  # 0..45
    expression_scale: float | None = None  # 0..3
    batch_size: int | None = None
    seed: int | None = None
    webhook_url: str | None = None
    webhook_events: Sequence[str] | None = None  # e.g. ("job.succeeded", "job.progress")
    metadata: Mapping[str, Any] | None = None

    def form_fields(self) -> dict[str, str]:
        """The non-file multipart fields, as strings (booleans as `true`/`false`, metadata as JSON)."""
        fields: dict[str, str] = {}
        for name in ("image_url", "audio_url", "ref_eyeblink_url", "ref_pose_url", "preprocess", "enhancer", "size",
                     "pose_style", "expression_scale", "batch_size", "seed", "webhook_url"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = str(value)
        if self.still is not None:
            fields["still"] = "true" if self.still else "false"
        if self.webhook_events is not None:
            fields["webhook_events"] = ",".join(self.webhook_events)
        if self.metadata is not None:
            fields["metadata"] = json.dumps(dict(self.metadata))
        return fields

    @contextlib.contextmanager
    def open_files(self) -> Iterator[dict[str, tuple[str, IO[bytes]]]]:
        """Opens the local files for a multipart upload (streamed, not read into memory)."""
        with contextlib.ExitStack() as stack:
            files: dict[str, tuple[str, IO[bytes]]] = {}
            for name in FILE_FIELDS:
                path = getattr(self, name)
                if path is not None:
                    path = Path(path)
                    try:
                        handle = stack.enter_context(path.open("rb"))
                    except OSError as e:
                        raise FileNotFoundError(f"cannot read the {name} file {path}: {e.strerror}") from e
                    files[name] = (path.name, handle)
            yield files


def headers_for(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": "sadtalker-client/0.2"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


def check(response: httpx.Response) -> httpx.Response:
    """Raises ApiError for a 4xx/5xx (the body must have been read)."""
    if response.status_code >= 400:
        raise ApiError.from_response(response)
    return response


@contextlib.contextmanager
def translated_transport_errors(base_url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as e:
        raise ConnectionFailed(f"cannot reach the service at {base_url}: {e or type(e).__name__}") from e


def job_event(sse: ServerSentEvent) -> JobEvent:
    return JobEvent(id=sse.id, event=sse.event, job=Job.from_dict(json.loads(sse.data)))


def job_list(body: Any) -> list[Job]:
    items = body.get("data", []) if isinstance(body, dict) else body
    return [Job.from_dict(item) for item in items]


def reconnect_delay_s(attempt: int) -> float | None:
    """Seconds to wait before reconnect `attempt` (1-based), or None when it is time to give up."""
    return RECONNECT_DELAYS_S[attempt - 1] if attempt <= len(RECONNECT_DELAYS_S) else None
