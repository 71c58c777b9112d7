"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

import model_paths

from .capabilities import capabilities
from .contract import Health, Ready, answers
from .deps import ServicesDep
from .errors import error_body

router = APIRouter(tags=["health"])
STORAGE_CHECK_TTL_S = 30.0  # a store's answer is reused this long (S3/Supabase checks are network calls)


class StorageCheck:
    """`storage.check()` for readiness, run off the event loop at most once per STORAGE_CHECK_TTL_S."""

    def __init__(self, storage: Any, ttl_s: float = STORAGE_CHECK_TTL_S):
        self.storage, self.ttl_s = storage, ttl_s
        self._last: tuple[float, str | None] | None = None  # (monotonic time, problem or None)

    async def problem(self) -> str | None:
        """None when the store can be used, else why not."""
        if self._last is None or time.monotonic() - self._last[0] > self.ttl_s:
            try:
                await asyncio.to_thread(self.storage.check)
                problem = None
            except Exception as e:  # StorageError, or anything a broken client raises
                problem = f"storage ({getattr(self.storage, 'name', '?')}) is not usable: {e}"
            self._last = (time.monotonic(), problem)
        return self._last[1]


def models_info(settings: Any, pool: Any = None) -> dict[str, Any]:
    """The `models` object of /readyz: checkpoint dir used (and why), face weight dirs, which face file was
    found where, the detector and enhancer those files give, and, once a worker has loaded, what it uses."""
    report = model_paths.models_report(settings.sadtalker_checkpoint_dir, settings.checkpoint_dir_source,
                                       settings.face_weight_dirs, settings.sadtalker_enhancer)
    loaded = None
    for worker in getattr(pool, "workers", []):
        pipeline = getattr(worker.renderer, "pipeline", None)
        if worker.state == "ready" and pipeline is not None:
            analyzer = getattr(pipeline, "analyzer", None)
            loaded = {"face_detector": getattr(analyzer, "backend", None),
                      "enhancer": "gfpgan" if getattr(pipeline, "enhancer", None) is not None else "none"}
            break
    report["loaded"] = loaded
    if loaded and loaded["face_detector"] == "dlib" and not report["warning"]:
        report["warning"] = "face detection uses the dlib fallback"
    report["dlib_fallback"] = report["dlib_fallback"] or bool(loaded and loaded["face_detector"] == "dlib")
    return report


def log_models(report: dict[str, Any], logger: logging.Logger) -> None:
    """The start-up log line(s) saying the same as /readyz's `models`."""
    found = ", ".join(f"{name}={path or 'MISSING'}" for name, path in report["face_files"].items())
    logger.info("models: checkpoints=%s (%s, %d model file(s)); face weights searched in %s; %s; face detector "
                "%s, enhancer %s", report["checkpoint_dir"], report["checkpoint_dir_source"],
                len(report["checkpoint_files"]), ", ".join(report["face_weights_dirs"]), found,
                report["face_detector"], report["enhancer"])
    if report["warning"]:
        logger.warning("%s", report["warning"])
    if report["enhancer_problem"]:
        logger.warning("enhancer: %s", report["enhancer_problem"])


@router.get("/healthz", response_model=None, responses=answers(model=Health))
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None, responses=answers("not_ready", model=Ready))
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 once models are loaded and warmed and the workers run; 503 with the reason otherwise.

    `storage` reports the video store's check. A local store that cannot be written makes the instance not
    ready; a cloud store that does not answer is only reported: uploads retry and a failed one keeps the
    video for retry-upload, while taking every instance out of rotation would stop all work."""
    pool, manager = services.pool.describe(), services.manager
    problem = await services.storage_check.problem() if services.storage_check is not None else None
    name = getattr(services.storage, "name", "local")
    models = await asyncio.to_thread(models_info, services.settings, services.pool)
    workers = [{k: v for k, v in w.items() if k != "job_id"} | {"busy": w["job_id"] is not None}
               for w in pool["workers"]]  # unauthenticated: no job ids
    detail = {"workers": workers, "queue_depth": manager.queue_depth(),
              "storage": {"name": name, "ok": problem is None, "problem": problem}, "models": models,
              "capabilities": capabilities(services.pool)}
    reason = None
    if not manager.accepting:
        reason = "the service is shutting down"
    elif pool["state"] == "failed":
        reason = services.pool.failure()["message"]  # type: ignore[index]
    elif pool["state"] == "loading":
        reason = "models are loading and warming up"
    elif not manager.workers_alive():
        reason = "no worker is running"
    elif problem is not None and name == "local":
        reason = problem
    elif (unwritable := manager.storage_probe.problem()) is not None:
        reason = unwritable  # the output folder or job database cannot be written: submissions answer 503
    if reason:
        return JSONResponse(error_body("not_ready", reason, **detail), status_code=503)
    return JSONResponse({"status": "ready", "pool": pool["state"], **detail})


@router.get("/metrics", response_model=None,
            responses={200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format."""
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
