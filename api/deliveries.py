"""A job's webhook deliveries: `GET /v1/jobs/{id}/deliveries` and re-sending one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .contract import AUTH_CODES, DeliveryList, Redelivery, answers
from .deps import Owner, ServicesDep
from .errors import ApiError

router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.get("/jobs/{job_id}/deliveries", response_model=None,
            responses=answers(*AUTH_CODES, "not_found", model=DeliveryList))
async def list_deliveries(job_id: str, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    """Every webhook delivery of the job, oldest first, each with its attempts (time, status code, error)."""
    services.manager.get(job_id, owner)  # 404 for an unknown or another key's job
    data = services.webhooks.deliveries(job_id) if services.webhooks is not None else []
    return {"object": "list", "data": data}


@router.post("/jobs/{job_id}/deliveries/{delivery_id}/redeliver", status_code=202, response_model=None,
             responses=answers(*AUTH_CODES, "not_found", ok=202, model=Redelivery))
async def redeliver(job_id: str, delivery_id: str, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    """Sends a delivery again (same webhook-id, a fresh retry budget); 404 for a delivery of another job."""
    from webhooks import DeliveryNotFound

    services.manager.get(job_id, owner)
    if services.webhooks is None:
        raise ApiError("not_found", f"no delivery {delivery_id} for job {job_id}")
    try:
        await services.webhooks.redeliver(delivery_id, job_id=job_id)
    except DeliveryNotFound as e:
        raise ApiError("not_found", f"no delivery {delivery_id} for job {job_id}") from e
    return {"id": delivery_id, "object": "delivery", "status": "pending"}
