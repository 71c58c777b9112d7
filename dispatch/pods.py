"""HTTP client to one pod: health check, create a job (multipart upload), poll it, legacy synchronous call.

Pods speak the service's `/v1/jobs` API (job JSON of CONTRACTS B). The pod's API key goes in `X-API-Key`;
the RunPod proxy token goes in `Authorization: Bearer ...`, or in `?token=` when SADTALKER_TOKEN_QUERY=true.
A legacy pod (`/generate_talking_video`) answers when the video is done: JSON naming the video's URL (under
one of VIDEO_URL_KEYS, at the top or under `result`/`data`/`output`), or the MP4 itself, which is written to
a file for the dispatcher to store (`{"video_file": path}`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx

from dispatch import constants as c
from dispatch.endpoints import PodEndpoint
from dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict], Awaitable[None]]  # receives the pod's job JSON on every poll


class PodError(RuntimeError):
    """The pod could not take or finish the job (down, restarting, busy, misconfigured): another pod may."""

    code = "pod_unavailable"


class RemoteJobFailed(RuntimeError):
    """The pod ran the job and it failed; `permanent` when no retry can fix it (bad inputs)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.permanent = code in c.PERMANENT_POD_ERRORS


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) from our error body `{"error": {"code", "message"}}`, else from the status line."""
    try:
        err = resp.json().get("error") or {}
        if isinstance(err, dict) and err.get("code"):
            return str(err["code"]), str(err.get("message") or "")
    except (ValueError, AttributeError):
        pass
    return f"http_{resp.status_code}", resp.text[:200]


def find_video_url(answer: dict) -> str | None:
    """The video URL of a pod's answer: `result.video_url` of a job, or a legacy app's URL under one of the
    usual names, at the top level or under `result`, `data` or `output`."""
    for where in (answer.get("result"), answer.get("data"), answer.get("output"), answer):
        if isinstance(where, dict):
            for key in c.VIDEO_URL_KEYS:
                if isinstance(where.get(key), str) and where[key].strip():
                    return where[key].strip()
    return None


def _is_mp4(resp: httpx.Response, head: bytes) -> bool:
    kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind.startswith("video/") or kind == "application/octet-stream" or head[4:8] == b"ftyp"


def _form_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class PodClient:
    def __init__(self, client: httpx.AsyncClient, settings: DispatchSettings):
        self.client = client
        self.settings = settings

    def _auth(self, ep: PodEndpoint) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, query params) for a request to `ep`."""
        headers, params = {}, {}
        api_key = self.settings.remote_api_key or ep.api_key
        if api_key:
            headers["X-API-Key"] = api_key
        if ep.token and self.settings.token_query:
            params["token"] = ep.token
        elif ep.token:
            headers["Authorization"] = f"Bearer {ep.token}"
        return headers, params

    async def _request(self, method: str, ep: PodEndpoint, path: str, **kwargs) -> httpx.Response:
        headers, params = self._auth(ep)
        try:
            return await self.client.request(method, ep.url + path, headers=headers, params=params, **kwargs)
        except httpx.HTTPError as e:
            raise PodError(f"{ep.url}{path}: {type(e).__name__}: {e}") from e

    async def health(self, ep: PodEndpoint) -> str | None:
        """None when the pod is ready for jobs (or probing is off), else why not. A legacy pod's default probe
        only asks whether its create route exists (LEGACY_ALIVE_STATUSES)."""
        path = self.settings.health_path
        if not path:
            return None
        try:
            resp = await self._request("GET", ep, path, timeout=c.POD_CONNECT_TIMEOUT_S)
        except PodError as e:
            return str(e)
        if self.settings.probe_is_route_check:
            return None if resp.status_code in c.LEGACY_ALIVE_STATUSES else f"{path} answered {resp.status_code}"
        return None if resp.status_code == 200 else f"{path} answered {resp.status_code}"

    async def create(self, ep: PodEndpoint, image: Path, audio: Path, options: dict) -> dict:
        """Upload the inputs; the pod's answer (job JSON, or the finished result of a legacy pod)."""
        data = {k: _form_value(v) for k, v in options.items() if v is not None}
        if self.settings.legacy_pods:
            return await self._create_legacy(ep, image, audio, data)
        timeout = httpx.Timeout(c.POD_UPLOAD_TIMEOUT_S, connect=c.POD_CONNECT_TIMEOUT_S)
        with image.open("rb") as img, audio.open("rb") as aud:
            files = {"image": (image.name, img), "audio": (audio.name, aud)}
            resp = await self._request("POST", ep, self.settings.remote_create_path, data=data, files=files,
                                       timeout=timeout)
        return self._answer(ep, resp)

    async def _create_legacy(self, ep: PodEndpoint, image: Path, audio: Path, data: dict) -> dict:
        """A legacy pod answers when the video is done (only the attempt's timeout bounds the wait), with JSON
        naming the video or with the MP4 itself (streamed to a file, capped at LEGACY_VIDEO_MAX_BYTES)."""
        timeout = httpx.Timeout(c.POD_UPLOAD_TIMEOUT_S, connect=c.POD_CONNECT_TIMEOUT_S, read=None)
        headers, params = self._auth(ep)
        url = ep.url + self.settings.remote_create_path
        with image.open("rb") as img, audio.open("rb") as aud:
            files = {"image": (image.name, img), "audio": (audio.name, aud)}
            try:
                async with self.client.stream("POST", url, headers=headers, params=params, data=data, files=files,
                                              timeout=timeout) as resp:
                    if resp.status_code >= 300 or "json" in resp.headers.get("content-type", ""):
                        await resp.aread()
                        answer = self._answer(ep, resp)
                        if not isinstance(answer, dict) or find_video_url(answer) is None:
                            raise PodError(f"{ep.url}: the legacy answer names no video URL")
                        return answer
                    return {"video_file": str(await self._save_mp4(ep, resp))}
            except httpx.HTTPError as e:
                raise PodError(f"{url}: {type(e).__name__}: {e}") from e

    async def _save_mp4(self, ep: PodEndpoint, resp: httpx.Response) -> Path:
        fd, name = tempfile.mkstemp(prefix="sadtalker-legacy-", suffix=".mp4")
        path, size, head = Path(name), 0, b""
        try:
            with open(fd, "wb") as out:
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > c.LEGACY_VIDEO_MAX_BYTES:
                        raise PodError(f"{ep.url}: the legacy answer is over {c.LEGACY_VIDEO_MAX_BYTES} bytes")
                    if len(head) < 16:
                        head = (head + chunk)[:16]
                    out.write(chunk)
            if size == 0 or not _is_mp4(resp, head):
                kind = resp.headers.get("content-type") or "no content type"
                raise PodError(f"{ep.url}: the legacy answer is neither JSON nor an MP4 ({kind}, {size} bytes)")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _answer(self, ep: PodEndpoint, resp: httpx.Response) -> dict:
        if resp.status_code < 300:
            try:
                return resp.json()
            except ValueError as e:
                raise PodError(f"{ep.url}: answered {resp.status_code} without JSON") from e
        code, message = _error_of(resp)
        if resp.status_code >= 500 or resp.status_code in (401, 403, 404, 408, 429):
            raise PodError(f"{ep.url} answered {resp.status_code} {code}: {message}")
        raise RemoteJobFailed(code, message)

    async def status(self, ep: PodEndpoint, job_id: str) -> dict:
        path = f"{self.settings.remote_status_path.rstrip('/')}/{job_id}"
        return self._answer(ep, await self._request("GET", ep, path, timeout=c.POD_REQUEST_TIMEOUT_S))

    async def cancel(self, ep: PodEndpoint, job_id: str) -> None:
        """Best effort: an abandoned attempt should not keep the pod's GPU busy."""
        path = f"{self.settings.remote_status_path.rstrip('/')}/{job_id}/cancel"
        try:
            await self._request("POST", ep, path, timeout=c.POD_REQUEST_TIMEOUT_S)
        except PodError as e:
            log.info("cancel of %s on %s failed: %s", job_id, ep.url, e)

    async def wait(self, ep: PodEndpoint, job: dict, on_progress: ProgressFn) -> dict:
        """Poll the pod's job until it succeeds (its final JSON) or fails (RemoteJobFailed). A pod that
        stops answering for POLL_FAILURES_BEFORE_DOWN polls in a row raises PodError."""
        interval_s = self.settings.poll_interval_ms / 1000
        failures = 0
        while True:
            status = job.get("status")
            if status == c.POD_SUCCEEDED:
                return job
            if status in c.POD_FAILED_STATES:
                err = job.get("error") or {}
                raise RemoteJobFailed(err.get("code") or status, err.get("message") or f"pod job {status}")
            await on_progress(job)
            await asyncio.sleep(interval_s)
            try:
                job = await self.status(ep, job["id"])
                failures = 0
            except PodError:
                failures += 1
                if failures >= c.POLL_FAILURES_BEFORE_DOWN:
                    raise

    def video_url(self, ep: PodEndpoint, answer: dict) -> str:
        """The video's absolute URL from a job JSON (`result.video_url`) or a legacy answer."""
        url = find_video_url(answer)
        if not url:
            raise PodError(f"{ep.url}: the answer names no video URL")
        url = urljoin(ep.url + "/", url)
        if ep.token and self.settings.token_query and url.startswith(ep.url):
            url += ("&" if "?" in url else "?") + f"token={ep.token}"
        return url
