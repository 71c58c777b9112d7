"""The `/v1/jobs` API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from jobs import JobStatus

from .deps import Owner, ServicesDep
from .errors import ApiError
from .inputs import request_body_doc
from .ranges import RangedFileResponse, parse_range
from .submission import submit_job

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.post("/jobs", status_code=202, openapi_extra=request_body_doc())
async def create_job(
    request: Request, services: ServicesDep, owner: Owner,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Queues a job (files `image`, `audio` or `image_url`, `audio_url`) and answers at once with it."""
    job, replayed = await submit_job(request, services, owner, idempotency_key)
    [body] = await services.job_json(request, job)
    headers = {"Location": body["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=202, headers=headers)


@router.get("/jobs")
async def list_jobs(
    request: Request, services: ServicesDep, owner: Owner,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(description="id of the last job of the previous page")] = None,
) -> dict[str, Any]:
    """The caller's jobs, newest first."""
    jobs = services.manager.list(owner, status=status, limit=limit + 1, after=after)
    page = jobs[:limit]
    return {
        "object": "list",
        "data": await services.job_json(request, *page),
        "has_more": len(jobs) > limit,
        "next_after": page[-1].id if len(jobs) > limit else None,
    }


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    job = services.manager.get(job_id, owner)
    [body] = await services.job_json(request, job)
    return body


@router.post("/jobs/{job_id}/cancel", status_code=202)
async def cancel_job(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    """A queued job is canceled at once; a running one stops at its next batch boundary (status follows)."""
    job = await services.manager.cancel(job_id, owner)
    [body] = await services.job_json(request, job)
    return body


@router.post("/jobs/{job_id}/retry-upload", status_code=202)
async def retry_upload(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    """Stores the video of a job that failed with `storage_error` again (it was kept on disk): the job runs
    at stage `upload` and ends `succeeded` or `failed` (webhook sent). `409 job_not_retryable` otherwise."""
    job = await services.manager.retry_upload(job_id, owner)
    [body] = await services.job_json(request, job)
    return body


@router.delete("/jobs/{job_id}", status_code=204)
async def delete_job(job_id: str, services: ServicesDep, owner: Owner) -> Response:
    """Cancels the job if needed and deletes its record, inputs and video."""
    await services.manager.delete(job_id, owner)
    if services.webhooks is not None:
        services.webhooks.drop_job(job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/video", response_class=FileResponse)
@router.head("/jobs/{job_id}/video", response_class=FileResponse, operation_id="head_job_video")
async def get_video(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> Response:
    """The MP4 (HTTP Range per RFC 9110: an invalid Range is ignored, an unsatisfiable one answers 416; HEAD
    answers the headers); a video kept in cloud storage answers with a redirect to it."""
    job = services.manager.get(job_id, owner)
    if job.status is not JobStatus.SUCCEEDED or job.result is None:
        raise ApiError("job_not_finished", f"job {job_id} is {job.status.value}; it has no video")
    path = services.video_path(job)
    if path is not None and path.is_file():
        ranges = parse_range(request.headers.get("range"), path.stat().st_size)
        return RangedFileResponse(path, ranges, media_type="video/mp4", filename=f"{job_id}.mp4",
                                  content_disposition_type="inline")
    [body] = await services.job_json(request, job)
    if body["result"]["video_url"] != body["links"]["video"]:  # kept in cloud storage: a fresh URL
        return RedirectResponse(body["result"]["video_url"], status_code=307)
    raise ApiError("not_found", f"the video of job {job_id} is no longer stored")
