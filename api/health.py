"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from .capabilities import capabilities
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


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 once models are loaded and warmed and the workers run; 503 with the reason otherwise.

    `storage` reports the video store's check. A local store that cannot be written makes the instance not
    ready; a cloud store that does not answer is only reported: uploads retry and a failed one keeps the
    video for retry-upload, while taking every instance out of rotation would stop all work."""
    pool, manager = services.pool.describe(), services.manager
    problem = await services.storage_check.problem() if services.storage_check is not None else None
    name = getattr(services.storage, "name", "local")
    detail = {"workers": pool["workers"], "queue_depth": manager.queue_depth(),
              "storage": {"name": name, "ok": problem is None, "problem": problem},
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
    if reason:
        return JSONResponse(error_body("not_ready", reason, **detail), status_code=503)
    return JSONResponse({"status": "ready", "pool": pool["state"], **detail})


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format."""
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
