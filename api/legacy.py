"""`POST /generate_talking_video`: the synchronous endpoint older pods and clients call.

Same inputs as `POST /v1/jobs`; the response comes when the job is finished. It runs through the same
queue, so a waiting client holds no GPU and a disconnected one leaves its job to finish.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from .contract import JOB_FAILURE_CODES, SUBMIT_CODES, LegacyJob, answers
from .deps import Owner, ServicesDep
from .errors import ApiError
from .inputs import request_body_doc
from .submission import submit_job

router = APIRouter(tags=["legacy"])


@router.post("/generate_talking_video", openapi_extra=request_body_doc(), response_model=None,
             responses=answers(*SUBMIT_CODES, *JOB_FAILURE_CODES, model=LegacyJob))
async def generate_talking_video(
    request: Request, services: ServicesDep, owner: Owner,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Waits for the result; answers the job JSON plus a top-level `video_url`, or the job's error."""
    job, _ = await submit_job(request, services, owner, idempotency_key)
    final: dict[str, Any] = {}
    async for snapshot in services.manager.watch(job.id, owner):
        final = snapshot
    if final.get("status") != "succeeded":
        error = final.get("error") or {"code": "render_failed", "message": "the job did not finish"}
        raise ApiError(error["code"], f"job {job.id}: {error['message']}")
    [final] = await services.job_json(request, services.manager.get(job.id, owner))
    return {**final, "video_url": final["result"]["video_url"]}
