"""Typed dependencies: the services made in the lifespan, and API-key authentication."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from jobs import Job, JobManager, WorkerPool
from settings import Settings

from .errors import ApiError
from .inputs import InputReader
from .metrics import Metrics
from .video_urls import VideoUrls

NO_KEY_MESSAGE = (
    "no API key is configured on this server, so every /v1 request is refused: set API_KEYS "
    "(comma-separated) or API_KEY in the service's environment and restart; clients send it as X-API-Key"
)


@dataclass
class Services:
    """Long-lived resources built in the lifespan and handed to requests through `app.state.services`."""

    settings: Settings
    manager: JobManager
    pool: WorkerPool
    reader: InputReader
    metrics: Metrics
    urls: VideoUrls
    storage: Any | None = None  # storage.Storage; None: videos stay under the output directory
    webhooks: Any | None = None  # webhooks.WebhookSender
    storage_check: Any | None = None  # api.health.StorageCheck

    def base_url(self, request: Request) -> str:
        """API_PUBLIC_BASE_URL, else the origin the request came to."""
        return self.settings.api_public_base_url or str(request.base_url).rstrip("/")

    async def job_json(self, request: Request, *jobs: Job) -> list[dict[str, Any]]:
        """The public JSON of `jobs`, with video URLs made fresh (presigned URLs expire)."""
        await self.urls.refresh(*jobs)
        base = self.base_url(request)
        return [self.manager.job_json(job, base) for job in jobs]

    def video_path(self, job: Job, field: str = "key") -> Path | None:
        """The local file of a succeeded job's video (or, with `field="poster_key"`, its poster), or None when
        it lives elsewhere."""
        if not job.result or not job.result.get(field):
            return None
        key = job.result[field]
        if self.storage is None:
            return Path(key)
        return self.storage.local_path(key)


def owner_id(api_key: str) -> str:
    """What job records store instead of the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def authenticate(keys: list[str], presented: str | None) -> str:
    """Owner id of the presented key; compares against every key in constant time."""
    if not keys:
        raise ApiError("unauthorized", NO_KEY_MESSAGE)
    if not presented:
        raise ApiError("unauthorized", "missing X-API-Key header")
    matched = None
    for key in keys:  # no early exit: the time taken does not reveal which key matched
        if hmac.compare_digest(key.encode(), presented.encode()):
            matched = key
    if matched is None:
        raise ApiError("unauthorized", "invalid API key")
    return owner_id(matched)


# The security scheme of every /v1 route (the Authorize button in /docs); checked by `authenticate`.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey",
                              description="one of the service's API_KEYS; a key sees only its own jobs")
ApiKey = Annotated[str | None, Security(api_key_header)]


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def request_owner(request: Request, keys: Any, x_api_key: str | None) -> str:
    """The owner of the request's one X-API-Key (two headers are refused: proxies disagree on which counts)."""
    if len(request.headers.getlist("x-api-key")) > 1:
        raise ApiError("unauthorized", "send exactly one X-API-Key header")
    return authenticate(keys, x_api_key)


def require_owner(request: Request, services: ServicesDep, x_api_key: ApiKey) -> str:
    return request_owner(request, services.settings.keys, x_api_key)


Owner = Annotated[str, Depends(require_owner)]
