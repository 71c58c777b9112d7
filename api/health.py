"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from .deps import ServicesDep
from .errors import error_body

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 once models are loaded and warmed and the workers run; 503 with the reason otherwise."""
    pool, manager = services.pool.describe(), services.manager
    detail = {"workers": pool["workers"], "queue_depth": manager.queue_depth()}
    reason = None
    if not manager.accepting:
        reason = "the service is shutting down"
    elif pool["state"] == "failed":
        reason = services.pool.failure()["message"]  # type: ignore[index]
    elif pool["state"] == "loading":
        reason = "models are loading and warming up"
    elif not manager.workers_alive():
        reason = "no worker is running"
    if reason:
        return JSONResponse(error_body("not_ready", reason, **detail), status_code=503)
    return JSONResponse({"status": "ready", "pool": pool["state"], **detail})


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format."""
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
