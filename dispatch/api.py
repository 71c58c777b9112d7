"""`dispatch.api:app`: the platform's create/status contract over the BullMQ queue, for deployments without
the Next.js front end.

    POST /api/sadtalker/create   {imageUrl, audioUrl, userId, ...options} -> {"jobId": "..."}
    GET  /api/sadtalker/status?id=...  -> {"state", "progress", "result", "error", ...} (BullMQ's states)
    GET  /api/sadtalker/videos/{key}   -> a video the dispatcher stored locally (legacy pods' MP4 answers)

Same API-key scheme as the service (`X-API-Key`); with no key configured every request is refused unless
SADTALKER_DISPATCH_OPEN=true. When the platform passes the user (`X-User-Id`, or `userId` in the query),
status answers only for jobs created with that `userId`. The routes are also an APIRouter (`router`) the service
can include; the queue connection is opened on first use, so the routes work mounted or included, where
no lifespan of ours runs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio
from bullmq import Job, Queue
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import urlguard
from dispatch import constants as c
from dispatch.payload import InvalidJobData, parse_payload
from dispatch.settings import DispatchSettings
from dispatch.videos import VideoStore

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass
class DispatchState:
    settings: DispatchSettings
    queue: Queue


async def dispatch_state(request: Request) -> DispatchState:
    """The app's settings and BullMQ queue, made on first use (settings from `create_app` or the env)."""
    state = request.app.state
    if getattr(state, "dispatch", None) is None:
        lock = getattr(state, "dispatch_lock", None) or asyncio.Lock()
        state.dispatch_lock = lock
        async with lock:
            if getattr(state, "dispatch", None) is None:
                settings = getattr(state, "dispatch_settings", None) or DispatchSettings()
                queue = Queue(settings.queue_name, {"connection": _redis_client(settings.redis_url),
                                                    "prefix": c.BULLMQ_PREFIX})
                state.dispatch = DispatchState(settings, queue)
    return state.dispatch


def _redis_client(url: str) -> redis.asyncio.Redis:
    """Short timeouts and few retries: a request must not hang while Redis is away (BullMQ's own default
    client retries for minutes, which suits the worker, not an HTTP request)."""
    return redis.asyncio.from_url(
        url, decode_responses=True, single_connection_client=False,
        socket_connect_timeout=c.API_REDIS_TIMEOUT_S, socket_timeout=c.API_REDIS_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), c.API_REDIS_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError])


@contextmanager
def _queue_errors() -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as e:
        raise ApiError(503, "queue_unavailable",
                       f"the job queue (Redis) is unreachable: {type(e).__name__}; try again shortly") from e


State = Annotated[DispatchState, Depends(dispatch_state)]


async def require_api_key(state: State, x_api_key: Annotated[str | None, Header()] = None) -> None:
    keys = state.settings.api_key_list
    if not keys:
        if state.settings.dispatch_open:
            return
        raise ApiError(401, "unauthorized",
                       "no API key is configured on the dispatcher: set SADTALKER_DISPATCH_API_KEYS (or API_KEYS), "
                       "or SADTALKER_DISPATCH_OPEN=true to accept requests without a key")
    if not any(hmac.compare_digest((x_api_key or "").encode(), k.encode()) for k in keys):
        raise ApiError(401, "unauthorized", "missing or invalid X-API-Key header")


router = APIRouter(prefix="/api/sadtalker", dependencies=[Depends(require_api_key)])


def _job_options(settings: DispatchSettings) -> dict:
    return {"attempts": settings.job_attempts,
            "backoff": {"type": "exponential", "delay": settings.job_backoff_ms},
            "removeOnComplete": {"age": c.KEEP_COMPLETED_S}, "removeOnFail": {"age": c.KEEP_FAILED_S}}


async def _check_urls(settings: DispatchSettings, *urls: str) -> None:
    """Refuse private/metadata addresses before enqueueing (the worker checks again, per redirect hop)."""
    for url in urls:
        try:
            await asyncio.to_thread(urlguard.check_url, url, allow_private=settings.allow_private_urls)
        except (urlguard.BlockedURL, urlguard.FetchFailed) as e:
            raise ApiError(422, e.code, str(e)) from e


@router.post("/create")
async def create(state: State, body: Annotated[dict[str, Any], Body()]) -> dict:
    """Enqueue a job; the data is stored as given, as the Next.js platform stores it."""
    try:
        payload = parse_payload(body)
    except InvalidJobData as e:
        raise ApiError(422, e.code, str(e)) from e
    await _check_urls(state.settings, payload.image_url, payload.audio_url)
    with _queue_errors():
        job = await state.queue.add(c.JOB_NAME, body, _job_options(state.settings))
    log.info("enqueued job %s for user %s", job.id, payload.user_id)
    return {"jobId": job.id}


@router.get("/status")
async def status(state: State, id: Annotated[str, Query(min_length=1, max_length=200)],
                 user_id: Annotated[str | None, Query(alias="userId", max_length=200)] = None,
                 x_user_id: Annotated[str | None, Header(max_length=200)] = None) -> dict:
    """The job's state; with a user id (header or query) only that user's jobs are found."""
    with _queue_errors():
        job_state = await state.queue.getJobState(id)  # first: a finished state's job hash is final
        job = await Job.fromId(state.queue, id)
    owner = x_user_id or user_id
    if job is not None and owner is not None and str((job.data or {}).get("userId")) != owner:
        job = None  # another user's job answers as if it did not exist
    if job is None:
        raise ApiError(404, "not_found", f"no job {id!r} in queue {state.settings.queue_name!r}")
    return {
        "id": id, "state": job_state, "progress": job.progress,
        "result": job.returnvalue if job_state == "completed" else None,
        "error": job.failedReason if job_state == "failed" else None,
        "lastError": job.failedReason or None, "attemptsMade": job.attemptsMade,
        "attempts": job.opts.get("attempts", 1),
    }


@router.get("/videos/{key}")
async def video(state: State, key: str) -> FileResponse:
    """A video the dispatcher stored on local disk (SADTALKER_DISPATCH_OUTPUT_DIR)."""
    path = VideoStore(state.settings).local_file(key)
    if path is None:
        raise ApiError(404, "not_found", f"no stored video {key!r}")
    return FileResponse(path, media_type="video/mp4")


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error_response(exc.status, exc.code, exc.message)


def include_in(app: FastAPI, settings: DispatchSettings | None = None) -> None:
    """Add the create/status routes (and their error handler) to another app, e.g. the service."""
    app.state.dispatch_settings = settings
    app.include_router(router)
    app.add_exception_handler(ApiError, _api_error)


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """The standalone app. `settings=None` reads the environment on the first request."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if getattr(app.state, "dispatch", None) is not None:
            await app.state.dispatch.queue.close()
            app.state.dispatch = None

    app = FastAPI(title="SadTalker platform queue", lifespan=lifespan)
    app.state.dispatch = None
    include_in(app, settings)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error_response(422, "validation_error", f"{where}: {first.get('msg', 'invalid request')}")

    return app


app = create_app()
