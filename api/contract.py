"""The typed contract of the API: response models, and each route's documented answers.

Routes build their JSON by hand (the job's public form lives in `jobs.models`); these models describe it in
the OpenAPI document and are checked against real responses by the tests. `answers()` makes a route's
`responses=`: the success body plus one envelope entry per error status, with every code the route really
raises as an example, its status taken from the one registry (`api.errors.ERROR_STATUS`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from jobs.models import STAGES

from .errors import status_of
from .inputs import JobOptions

# A sample message per code, for the examples in /docs (a code without one gets a generic sentence).
EXAMPLE_MESSAGES = {
    "unauthorized": "missing X-API-Key header",
    "forbidden": "the link is invalid or has expired; read the job again for a fresh video_url",
    "not_found": "no job job_0123456789abcdef01234567",
    "validation_error": "size: must be 256 or 512",
    "unknown_field": "unknown field 'face' (fields: image, audio, image_url, audio_url, ...)",
    "payload_too_large": "image is over the 10485760-byte limit",
    "unsupported_media_type": "image must be JPEG, PNG or WebP",
    "invalid_image": "image could not be decoded",
    "invalid_audio": "audio could not be decoded by ffmpeg",
    "invalid_video": "ref_pose could not be decoded",
    "audio_too_long": "audio is 412.0 s long; the limit is 300 s",
    "no_face_detected": "no face was found in the image",
    "url_not_allowed": "image_url points at a private address",
    "fetch_failed": "image_url answered 404",
    "idempotency_conflict": "Idempotency-Key 'order-42' was used for a different request",
    "job_not_finished": "job job_0123456789abcdef01234567 is running; it has no video",
    "job_not_retryable": "only a job that failed with storage_error can retry the upload",
    "queue_full": "100 jobs are waiting; retry after the Retry-After seconds",
    "range_not_satisfiable": "the range starts after the end of the 183204-byte file",
    "models_unavailable": "checkpoints/SadTalker_V0.0.2_256.safetensors is missing",
    "not_ready": "models are loading and warming up",
    "shutting_down": "the service is shutting down; retry on another instance",
    "storage_unavailable": "the output folder cannot be written (disk full); retry after the Retry-After seconds",
    "storage_full": "the disk filled while the video was written; submit the job again later",
    "bad_request": "the request could not be read as sent",
    "request_timeout": "no body data for 30 s; send the request again",
    "capability_unavailable": "size=512 cannot run on this service (loaded: sizes 256)",
    "silent_audio": "the audio is silent or nearly so; send speech, or set allow_silent=true",
    "internal_error": "an unexpected error; report the request id",
}
# Codes every route under /v1 answers (API-key authentication).
AUTH_CODES = ("unauthorized",)
# The codes of a body read by `InputReader` (POST /v1/jobs, /v1/preflight, the legacy endpoint).
INPUT_CODES = ("validation_error", "unknown_field", "payload_too_large", "unsupported_media_type",
               "invalid_image", "invalid_audio", "invalid_video", "audio_too_long", "no_face_detected",
               "url_not_allowed", "fetch_failed", "request_timeout", "capability_unavailable")
SUBMIT_CODES = (*AUTH_CODES, *INPUT_CODES, "idempotency_conflict", "queue_full", "models_unavailable",
                "shutting_down", "storage_unavailable", "silent_audio")
# What a job can fail with (the legacy endpoint answers the job's error as its own).
JOB_FAILURE_CODES = ("no_face_detected", "invalid_audio", "invalid_video", "canceled", "render_failed",
                     "encode_failed", "checkpoint_error", "storage_error", "storage_full", "interrupted", "timeout")


class ErrorDetail(BaseModel):
    """What went wrong; `code` is stable, `message` a human sentence. Some answers add fields
    (`request_id`; `/readyz` adds its `workers`, `queue_depth` and `storage`)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable error code (see the error table)", examples=["not_found"])
    message: str = Field(description="a human sentence saying what to do")
    request_id: str | None = Field(None, description="the request's id (X-Request-ID), when the service sets one")


class ErrorEnvelope(BaseModel):
    """Every error answers this envelope."""

    error: ErrorDetail


class Progress(BaseModel):
    stage: Literal[STAGES] | None = Field(description="current stage; null before the first")  # type: ignore[valid-type]
    percent: float = Field(ge=0, le=100, description="overall percent; never goes down")
    frames_done: int | None = None
    frames_total: int | None = None
    eta_s: float | None = Field(None, description="estimated seconds left, from measured stage speeds; null while unknown")


class JobResult(BaseModel):
    """The finished video of a succeeded job."""

    video_url: str = Field(description="the MP4: a signed, expiring link (local storage) or the store's URL")
    poster_url: str | None = Field(None, description="a JPEG of the video's middle frame, stored beside it")
    duration_s: float | None = None
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = Field(None, description="size of the MP4")
    face_detector: str | None = Field(None, description="retinaface+fan, or dlib (the fallback)")
    storage: str | None = Field(None, description="local, s3 or supabase")
    seed: int | None = Field(None, description="the seed used: pass it back to reproduce the job")


class JobFailure(BaseModel):
    code: str = Field(description="timeout, interrupted, canceled, render_failed, storage_error, or the model's")
    message: str


class JobLinks(BaseModel):
    self: str
    video: str
    cancel: str
    events: str


JOB_EXAMPLE = {
    "id": "job_0123456789abcdef01234567", "object": "job", "status": "succeeded",
    "created_at": "2026-11-29T18:00:00.000Z", "started_at": "2026-11-29T18:00:00.120Z",
    "finished_at": "2026-11-29T18:00:09.480Z", "updated_at": "2026-11-29T18:00:09.480Z",
    "progress": {"stage": "upload", "percent": 100.0, "frames_done": None, "frames_total": None, "eta_s": 0.0},
    "queue_position": None, "attempts": 1,
    "options": {"preprocess": "crop", "still": False, "enhancer": "none", "size": 256, "pose_style": 0,
                "expression_scale": 1.0, "batch_size": 2, "seed": 1234},
    "metadata": {"user": 42}, "webhook_url": None,
    "result": {"video_url": "https://api.example.com/v1/jobs/job_0123456789abcdef01234567/video?exp=1796000000&sig=q1w2e3",
               "poster_url": "https://api.example.com/v1/jobs/job_0123456789abcdef01234567/poster?exp=1796000000&sig=r4t5y6",
               "duration_s": 2.4, "frames": 60, "width": 256, "height": 256, "bytes": 183204,
               "face_detector": "retinaface+fan", "storage": "local", "seed": 1234},
    "error": None,
    "links": {"self": "https://api.example.com/v1/jobs/job_0123456789abcdef01234567",
              "video": "https://api.example.com/v1/jobs/job_0123456789abcdef01234567/video",
              "cancel": "https://api.example.com/v1/jobs/job_0123456789abcdef01234567/cancel",
              "events": "https://api.example.com/v1/jobs/job_0123456789abcdef01234567/events"},
}


class Job(BaseModel):
    """A job: the answer of every `/v1/jobs` route, the body of webhooks and of each SSE event."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: str = Field(examples=["job_0123456789abcdef01234567"])
    object: Literal["job"]
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    created_at: str = Field(description="ISO 8601, UTC")
    started_at: str | None
    finished_at: str | None
    updated_at: str
    progress: Progress
    queue_position: int | None = Field(description="1 = next; only while queued")
    attempts: int = Field(description="runs of the job: 2 means it was running when the service stopped and ran again")
    options: JobOptions
    metadata: dict[str, Any]
    webhook_url: str | None
    result: JobResult | None = Field(description="only when succeeded")
    error: JobFailure | None = Field(description="only when failed or canceled")
    links: JobLinks


class LegacyJob(Job):
    """The finished job plus its `video_url` at the top level (older clients read it there)."""

    video_url: str


class JobList(BaseModel):
    object: Literal["list"]
    data: list[Job] = Field(description="newest first")
    has_more: bool
    next_after: str | None = Field(description="pass as `after` for the next page")


class Attempt(BaseModel):
    at: str | None
    status_code: int | None = Field(description="the receiver's HTTP status; null when no answer came")
    error: str | None
    duration_ms: float | None


class Delivery(BaseModel):
    id: str
    event: str = Field(examples=["job.succeeded"])
    url: str
    status: Literal["pending", "delivered", "failed", "skipped", "superseded"]
    created_at: str | None
    attempts: list[Attempt]
    next_attempt_at: str | None


class DeliveryList(BaseModel):
    object: Literal["list"]
    data: list[Delivery] = Field(description="oldest first")


class Redelivery(BaseModel):
    id: str
    object: Literal["delivery"]
    status: Literal["pending"]


class Health(BaseModel):
    status: Literal["ok"]


class StorageState(BaseModel):
    name: str
    ok: bool
    problem: str | None


class Ready(BaseModel):
    status: Literal["ready"]
    pool: str = Field(description="state of the worker pool")
    workers: list[dict[str, Any]] = Field(description="one entry per worker: device, state, busy (never a job id)")
    queue_depth: int
    storage: StorageState
    models: dict[str, Any] | None = Field(None, description="which model files were found where (checkpoint folder, "
                                                            "face weights, detector, enhancer), when reported")


def error_example(code: str) -> dict[str, Any]:
    message = EXAMPLE_MESSAGES.get(code, f"the request failed with {code}")
    return {"summary": code, "value": {"error": {"code": code, "message": message}}}


def answers(*codes: str, ok: int = 200, model: type[BaseModel] | None = None,
            ok_description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: its success body (`model` at status `ok`) and, per status, the error envelope
    with one example per code the route raises (and `internal_error`, which any route may answer). Statuses
    come from `api.errors.ERROR_STATUS`."""
    out: dict[int | str, dict[str, Any]] = {}
    if model is not None:
        out[ok] = {"model": model, "description": ok_description or "Successful Response"}
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys((*codes, "internal_error")):
        by_status.setdefault(status_of(code), []).append(code)
    for status, status_codes in sorted(by_status.items()):
        out[status] = {
            "model": ErrorEnvelope,
            "description": "error codes: " + ", ".join(f"`{code}`" for code in status_codes),
            "content": {"application/json": {"examples": {code: error_example(code) for code in status_codes}}},
        }
        if status == 429:
            out[status]["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                                      "schema": {"type": "integer"}}}
    return out


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document without FastAPI's own 422 body (`{"detail": [...]}`), which this API never
    sends: every error is the envelope, and routes whose parameters can fail list `validation_error`."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in doc["paths"].values():
            for operation in path.values():
                answer = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in json.dumps(answer):
                    del operation["responses"]["422"]
        schemas = doc.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema


def install_openapi(app: FastAPI) -> None:
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
