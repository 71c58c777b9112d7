"""The composition root: `create_app(settings)` wires settings, job store, storage, webhooks, the worker pool
and the job manager together, and is the only place that turns domain errors into HTTP answers.

`run.sh` starts it with `uvicorn --factory api_app:create_app`; importing this module has no side effects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import urlguard
from api import deliveries, events, health, jobs_routes, legacy, preflight, web
from api.contract import install_openapi
from api.deps import Services
from api.docs_ui import install_docs
from api.errors import ERROR_STATUS, HTTP_CODES, ApiError, error_body
from api.health import StorageCheck
from api.inputs import MULTIPART_OVERHEAD_BYTES, InputLimits, InputReader
from api.links import LinkSigner, load_or_create_secret
from api.logs import configure_logging
from api.metrics import Metrics
from api.middleware import BodyLimits, RequestMiddleware
from api.poster import PosterError, make_poster
from api.renderer import (
    GpuUnusable,
    pipeline_renderer_factory,
    refuse_unusable_gpu,
    resolve_devices,
    spanning_worker,
)
from api.video_urls import VideoUrls
from jobs import Job, JobManager, JobStore, ManagerConfig, RendererFactory, WorkerPool
from jobs.errors import JobError
from jobs.manager import ManagerHooks
from settings import Settings

log = logging.getLogger("api_app")


def create_app(settings: Settings | None = None, *, renderer_factory: RendererFactory | None = None) -> FastAPI:
    """The ASGI app. `renderer_factory` defaults to the SadTalker pipeline (loaded once per worker)."""
    settings = settings or Settings()
    configure_logging(settings.api_log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await build_services(settings, renderer_factory, stack)
            yield

    app = FastAPI(
        title="SadTalker talking-head service",
        version="1.0.0",
        description="A portrait photo and a speech recording in; a lip-synced, head-moving MP4 out.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served with local assets by api.docs_ui
    )
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.add_middleware(RequestMiddleware, limits=body_limits(settings),
                       metrics=lambda: getattr(getattr(app.state, "services", None), "metrics", None),
                       route_paths=lambda: [*app.openapi()["paths"], *(getattr(r, "path", "") for r in app.routes)])
    for router in (health.router, jobs_routes.router, legacy.router):
        app.include_router(router)
    app.include_router(events.router)
    app.include_router(deliveries.router)
    app.include_router(preflight.router)
    app.include_router(web.router)
    return app


def body_limits(settings: Settings) -> BodyLimits:
    """The cap on any request body: every file part at its limit plus the text fields and part headers."""
    files = settings.sadtalker_max_image_bytes + settings.sadtalker_max_audio_bytes + 2 * settings.sadtalker_max_video_bytes
    return BodyLimits(files + MULTIPART_OVERHEAD_BYTES, settings.sadtalker_body_idle_timeout_s,
                      settings.sadtalker_body_timeout_s)


async def build_services(settings: Settings, renderer_factory: RendererFactory | None,
                         stack: AsyncExitStack) -> Services:
    """Builds every long-lived resource; `stack` closes them in reverse order."""
    settings.log_summary(log)
    health.log_models(health.models_info(settings), log)
    try:
        refuse_unusable_gpu(settings.sadtalker_device, settings.cuda_visible_devices)
    except GpuUnusable as e:
        log.error("refusing to start: %s", e)
        raise
    output_dir = settings.sadtalker_output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.db_path)
    stack.callback(store.close)
    storage = build_storage(settings)
    client = httpx.AsyncClient(headers={"user-agent": "sadtalker-service"}, timeout=settings.sadtalker_fetch_timeout_s)
    stack.push_async_callback(client.aclose)
    webhooks = await build_webhooks(settings)
    if webhooks is not None:
        stack.push_async_callback(webhooks.close)
    factory = renderer_factory or pipeline_renderer_factory(
        settings.sadtalker_checkpoint_dir, sizes=settings.preload_sizes, precision=settings.precision,
        enhancer=settings.sadtalker_enhancer, face_dirs=settings.face_weight_dirs,
        compile_models=settings.sadtalker_compile, min_segment_frames=round(settings.sadtalker_min_segment_s * 25))
    devices = resolve_devices(settings.sadtalker_device, settings.sadtalker_workers)
    pool = WorkerPool(factory, spanning_worker(devices) if settings.sadtalker_split_devices else devices)
    metrics = Metrics()
    signer = LinkSigner(load_or_create_secret(settings.sadtalker_link_secret, output_dir), settings.sadtalker_link_ttl_s)
    urls = VideoUrls(storage, settings.storage_url_expiry_s, signer)
    manager = JobManager(store, pool, manager_config(settings), ManagerHooks())
    manager.hooks = job_hooks(manager, settings, storage, webhooks, metrics, urls)
    await manager.start()
    stack.push_async_callback(manager.close)
    metrics.watch(store.count_by_status, manager.queue_depth)
    limits = InputLimits(
        settings.sadtalker_max_image_bytes, settings.sadtalker_max_audio_bytes, settings.sadtalker_max_video_bytes,
        settings.sadtalker_max_audio_seconds, settings.sadtalker_max_image_pixels,
        settings.sadtalker_fetch_timeout_s, settings.sadtalker_allow_private_urls)
    reader = InputReader(limits, imageio_ffmpeg.get_ffmpeg_exe(), client, face_check=pool.check_face)
    return Services(settings, manager, pool, reader, metrics, urls, storage, webhooks, StorageCheck(storage))


def manager_config(settings: Settings) -> ManagerConfig:
    return ManagerConfig(
        work_dir=settings.sadtalker_output_dir, max_queue=settings.sadtalker_max_queue,
        job_timeout_s=settings.sadtalker_job_timeout_s, shutdown_grace_s=settings.sadtalker_shutdown_grace_s,
        retention_s=settings.sadtalker_retention_hours * 3600, idempotency_ttl_s=settings.sadtalker_idempotency_ttl_s,
        public_base_url=settings.api_public_base_url, keep_inputs=settings.sadtalker_keep_inputs,
        model_reload_s=settings.sadtalker_model_reload_s,
        min_free_bytes=int(settings.sadtalker_min_free_mb * 2**20), save_retry_s=settings.sadtalker_save_retry_s)


def build_storage(settings: Settings) -> Any:
    from storage import create_storage

    return create_storage(settings.storage_provider or None, settings.storage_options(),
                          local_root=settings.sadtalker_output_dir / "videos")


async def build_webhooks(settings: Settings) -> Any:
    from webhooks import WebhookSender

    allow_private = settings.sadtalker_allow_private_urls
    schedule = {"schedule_s": settings.webhook_schedule} if settings.webhook_schedule else {}
    sender = WebhookSender(settings.db_path, settings.webhook_secret_list, **schedule,
                           timeout_s=settings.sadtalker_webhook_timeout_s,
                           url_check=lambda url: urlguard.check_url(url, allow_private=allow_private))
    await sender.start()
    return sender


def job_hooks(manager: JobManager, settings: Settings, storage: Any, webhooks: Any, metrics: Metrics,
              urls: VideoUrls) -> ManagerHooks:
    """The callables the job manager is handed: publish to storage, forget deleted jobs, emit events."""
    from storage import StorageError, put_file_retrying_async

    async def publish(job: Job, video: Path) -> dict[str, Any]:
        """Stored and its size checked, retried with backoff (SADTALKER_UPLOAD_RETRY_DELAYS_S); then its poster
        (middle frame) beside it (a video without one still succeeds, with a warning)."""
        image = video.with_name(f"{job.id}.poster.jpg")
        try:
            stored = await put_file_retrying_async(storage, video, f"{job.id}.mp4", "video/mp4",
                                                   delays_s=settings.upload_retry_delays)
            poster = await publish_poster(job, video, image)
        finally:
            image.unlink(missing_ok=True)
        return {"key": stored.key, "url": stored.url, "storage": storage.name, "bytes": stored.size, **poster}

    async def publish_poster(job: Job, video: Path, image: Path) -> dict[str, Any]:
        try:
            await asyncio.to_thread(make_poster, imageio_ffmpeg.get_ffmpeg_exe(), video, image)
            stored = await put_file_retrying_async(storage, image, f"{job.id}.jpg", "image/jpeg",
                                                   delays_s=settings.upload_retry_delays)
        except (PosterError, StorageError) as e:
            log.warning("job %s: no poster: %s", job.id, e, extra={"job_id": job.id})
            return {}
        return {"poster_key": stored.key, "poster_url": stored.url}

    def discard(job: Job) -> None:
        if webhooks is not None:
            webhooks.drop_job(job.id)
        for field in ("key", "poster_key"):
            if job.result and job.result.get(field):
                storage.delete(job.result[field])

    async def on_event(event: str, job: Job) -> None:
        if webhooks is not None and job.webhook_url and event in job.webhook_events:
            await urls.refresh(job)
            await webhooks.enqueue(job.id, job.webhook_url, event, {**manager.job_json(job), "type": event})

    return ManagerHooks(publish=publish, discard=discard, on_event=on_event, on_stage=metrics.stage_done,
                        on_finish=metrics.job_finished, video_url=urls.current, poster_url=urls.poster)


def _error_response(code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=ERROR_STATUS.get(code, 500), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error of ours answers {"error": {"code", "message"}} with the status from ERROR_STATUS."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error_response(e.code, e.message, e.headers)

    @app.exception_handler(JobError)
    async def job_error(_: Request, e: JobError) -> JSONResponse:
        retry_after_s = getattr(e, "retry_after_s", None)  # QueueFull, StorageUnavailable
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return _error_response(e.code, str(e), headers)

    @app.exception_handler(urlguard.BlockedURL)
    @app.exception_handler(urlguard.FetchFailed)
    async def url_error(_: Request, e: urlguard.BlockedURL | urlguard.FetchFailed) -> JSONResponse:
        return _error_response(e.code, str(e))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        return _error_response("validation_error", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(e.status_code, "http_error")
        return JSONResponse(error_body(code, str(e.detail)), status_code=e.status_code, headers=e.headers)


def __getattr__(name: str) -> Any:
    """`uvicorn api_app:app` (the original description's command) builds the app on first access only."""
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
