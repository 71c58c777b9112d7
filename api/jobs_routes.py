"""The `/v1/jobs` API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from jobs import Job, JobStatus

from .contract import AUTH_CODES, SUBMIT_CODES, JobList, answers
from .contract import Job as JobModel
from .deps import ApiKey, Owner, Services, ServicesDep, request_owner
from .errors import ApiError
from .inputs import request_body_doc
from .ranges import RangedFileResponse, parse_range
from .submission import submit_job

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.post("/jobs", status_code=202, openapi_extra=request_body_doc(), response_model=None,
             responses=answers(*SUBMIT_CODES, ok=202, model=JobModel,
                               ok_description="the job, queued (or the earlier job of a replayed Idempotency-Key)"))
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


@router.get("/jobs", response_model=None,
            responses=answers(*AUTH_CODES, "validation_error", "not_found", model=JobList))
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


@router.get("/jobs/{job_id}", response_model=None, responses=answers(*AUTH_CODES, "not_found", model=JobModel))
async def get_job(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    job = services.manager.get(job_id, owner)
    [body] = await services.job_json(request, job)
    return body


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=None,
             responses=answers(*AUTH_CODES, "not_found", ok=202, model=JobModel))
async def cancel_job(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    """A queued job is canceled at once; a running one stops at its next batch boundary (status follows)."""
    job = await services.manager.cancel(job_id, owner)
    [body] = await services.job_json(request, job)
    return body


@router.post("/jobs/{job_id}/retry-upload", status_code=202, response_model=None,
             responses=answers(*AUTH_CODES, "not_found", "job_not_retryable", "shutting_down", ok=202, model=JobModel))
async def retry_upload(job_id: str, request: Request, services: ServicesDep, owner: Owner) -> dict[str, Any]:
    """Stores the video of a job that failed with `storage_error` again (it was kept on disk): the job runs
    at stage `upload` and ends `succeeded` or `failed` (webhook sent). `409 job_not_retryable` otherwise."""
    job = await services.manager.retry_upload(job_id, owner)
    [body] = await services.job_json(request, job)
    return body


@router.delete("/jobs/{job_id}", status_code=204, response_model=None, responses=answers(*AUTH_CODES, "not_found"))
async def delete_job(job_id: str, services: ServicesDep, owner: Owner) -> Response:
    """Cancels the job if needed and deletes its record, inputs and video."""
    await services.manager.delete(job_id, owner)
    if services.webhooks is not None:
        services.webhooks.drop_job(job_id)
    return Response(status_code=204)


MEDIA = {"video": ("key", "url", "video/mp4", "mp4"), "poster": ("poster_key", "poster_url", "image/jpeg", "jpg")}
SIGNED_QUERY = "`exp` and `sig` come from `result.video_url` / `result.poster_url` (a signed link: no X-API-Key)"
MEDIA_CODES = ("unauthorized", "forbidden", "not_found", "job_not_finished", "range_not_satisfiable")
KEY_OR_LINK = {"security": [{}]}  # appended to the API key: the key, or no key with a signed link


def media_doc(kind: str, media_type: str) -> dict[str | int, dict[str, Any]]:
    return {**answers(*MEDIA_CODES), 200: {"content": {media_type: {}}, "description": f"the {kind}"},
            206: {"content": {media_type: {}}, "description": "the requested Range of it"},
            307: {"description": "kept in cloud storage: redirect to a fresh URL of it"}}


def linked_job(request: Request, services: Services, job_id: str, kind: str, key: str | None, exp: str | None,
               sig: str | None) -> Job:
    """The job whose media is asked for: by a signed link (`exp`, `sig`), else by the caller's API key."""
    if exp is None and sig is None:
        return services.manager.get(job_id, request_owner(request, services.settings.keys, key))
    if not services.urls.signer.verify(f"/v1/jobs/{job_id}/{kind}", exp, sig):
        raise ApiError("forbidden", "the link is invalid or has expired; read the job again for a fresh link")
    return services.manager.get(job_id)


async def serve_media(kind: str, job_id: str, request: Request, services: Services, key: str | None,
                      exp: str | None, sig: str | None) -> Response:
    job = linked_job(request, services, job_id, kind, key, exp, sig)
    if job.status is not JobStatus.SUCCEEDED or job.result is None:
        raise ApiError("job_not_finished", f"job {job_id} is {job.status.value}; it has no {kind}")
    key_field, url_field, media_type, ext = MEDIA[kind]
    path = services.video_path(job, key_field)
    if path is not None and path.is_file():
        ranges = parse_range(request.headers.get("range"), path.stat().st_size)  # RFC 9110: a bad one is ignored
        return RangedFileResponse(path, ranges, media_type=media_type, filename=f"{job_id}.{ext}",
                                  content_disposition_type="inline")
    if not services.urls.local and job.result.get(key_field):  # kept in cloud storage: a fresh URL
        await services.urls.refresh(job)
        url = (services.urls.current(job) if kind == "video" else services.urls.poster(job)) or job.result.get(url_field)
        if url:
            return RedirectResponse(url, status_code=307)
    raise ApiError("not_found", f"the {kind} of job {job_id} is no longer stored")


@router.get("/jobs/{job_id}/video", response_class=FileResponse, responses=media_doc("MP4", "video/mp4"),
            openapi_extra=KEY_OR_LINK)
@router.head("/jobs/{job_id}/video", response_class=FileResponse, responses=media_doc("MP4", "video/mp4"),
             openapi_extra=KEY_OR_LINK, operation_id="head_job_video")
async def get_video(job_id: str, request: Request, services: ServicesDep, key: ApiKey,
                    exp: Annotated[str | None, Query(description=SIGNED_QUERY)] = None,
                    sig: Annotated[str | None, Query(description=SIGNED_QUERY)] = None) -> Response:
    """The MP4 (HTTP Range per RFC 9110: an invalid Range is ignored, an unsatisfiable one answers 416; HEAD
    answers the headers); a video kept in cloud storage answers with a redirect to it. With the API key, or
    without one through the signed `result.video_url` (`403 forbidden` once it expired)."""
    return await serve_media("video", job_id, request, services, key, exp, sig)


@router.get("/jobs/{job_id}/poster", response_class=FileResponse, responses=media_doc("poster JPEG", "image/jpeg"),
            openapi_extra=KEY_OR_LINK)
async def get_poster(job_id: str, request: Request, services: ServicesDep, key: ApiKey,
                     exp: Annotated[str | None, Query(description=SIGNED_QUERY)] = None,
                     sig: Annotated[str | None, Query(description=SIGNED_QUERY)] = None) -> Response:
    """The poster (the video's middle frame, JPEG), like the video: API key or the signed `result.poster_url`."""
    return await serve_media("poster", job_id, request, services, key, exp, sig)
