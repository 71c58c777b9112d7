"""HTTP client to a RunPod serverless endpoint (`https://api.runpod.ai/v2/{endpointId}`).

RunPod's serverless API, with `Authorization: Bearer <endpoint API key>`:

    POST {url}/run           {"input": {...}}          -> {"id": "...", "status": "IN_QUEUE"}
    GET  {url}/status/{id}                             -> {"id", "status", "output"?, "error"?}
    POST {url}/cancel/{id}
    GET  {url}/health                                  -> {"jobs": {...}, "workers": {...}}

Status runs IN_QUEUE -> IN_PROGRESS -> COMPLETED | FAILED | CANCELLED | TIMED_OUT. The worker (`handler.py`)
takes `{"input": {"image": url, "audio": url, <options>}}` and its output names the video under `video_url`
(an http(s) URL, or a `data:video/mp4;base64,...` URI when it returned the video inline); while the job runs,
`output` holds its last progress update (a number, or an object with `percent`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from dispatch import constants as c
from dispatch.endpoints import PodEndpoint
from dispatch.pods import PodError, RemoteJobFailed
from dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)
ProgressFn = Callable[[dict], Awaitable[None]]  # receives {"progress": {"percent": ...}} like a pod's job
_CODE_PREFIX = re.compile(r"^([a-z][a-z0-9_]{2,40}): (.*)$", re.S)


def serverless_input(image_url: str, audio_url: str, options: dict) -> dict:
    """The job input: `image` and `audio` as the URLs the job gave, plus the options by the service's names."""
    return {"input": {"image": image_url, "audio": audio_url,
                      **{name: value for name, value in options.items() if value is not None}}}


def error_of(body: dict) -> tuple[str, str]:
    """(code, message) of a failed job: the SDK's `error` (a string, possibly `code: message` or the JSON of
    `{error_type, error_message}`), or an object with `code`/`message`."""
    error = body.get("error")
    if not error and isinstance(body.get("output"), dict):
        error = body["output"].get("error")
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error = parsed
        else:
            match = _CODE_PREFIX.match(error.strip())
            return (match.group(1), match.group(2)) if match else ("serverless_failed", error[:500])
    if isinstance(error, dict):
        code = error.get("code") or error.get("error_type") or "serverless_failed"
        message = error.get("message") or error.get("error_message") or json.dumps(error)[:500]
        return str(code), str(message)
    status = str(body.get("status") or "FAILED")
    return ("timeout" if status == "TIMED_OUT" else "canceled" if status == "CANCELLED" else "serverless_failed",
            f"the serverless job ended {status}")


def progress_percent(output: object) -> float | None:
    """The percent of a progress update: a number, or an object's `percent` / `progress`."""
    if isinstance(output, dict):
        output = output.get("percent", output.get("progress"))
        if isinstance(output, dict):
            output = output.get("percent")
    if isinstance(output, (int, float)) and not isinstance(output, bool):
        return float(output)
    return None


def save_data_uri(uri: str, max_bytes: int) -> Path:
    """A `data:video/mp4;base64,...` URI written to a temporary MP4 file. Raises PodError when malformed."""
    header, _, payload = uri.partition(",")
    if not header.startswith("data:") or ";base64" not in header or len(payload) * 3 // 4 > max_bytes:
        raise PodError("the serverless output's inline video is not a base64 data: URI within the size limit")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise PodError(f"the serverless output's inline video is not valid base64: {e}") from e
    fd, name = tempfile.mkstemp(prefix="sadtalker-serverless-", suffix=".mp4")
    with open(fd, "wb") as out:
        out.write(data)
    return Path(name)


class ServerlessClient:
    def __init__(self, client: httpx.AsyncClient, settings: DispatchSettings):
        self.client = client
        self.settings = settings

    def _headers(self, ep: PodEndpoint) -> dict[str, str]:
        key = ep.api_key or ep.token
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def _call(self, method: str, ep: PodEndpoint, path: str, **kwargs) -> dict:
        try:
            resp = await self.client.request(method, ep.url + path, headers=self._headers(ep),
                                             timeout=c.POD_REQUEST_TIMEOUT_S, **kwargs)
        except httpx.HTTPError as e:
            raise PodError(f"{ep.url}{path}: {type(e).__name__}: {e}") from e
        if resp.status_code >= 300:
            raise PodError(f"{ep.url}{path} answered {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as e:
            raise PodError(f"{ep.url}{path} answered {resp.status_code} without JSON") from e
        if not isinstance(body, dict):
            raise PodError(f"{ep.url}{path} answered JSON that is not an object")
        return body

    async def health(self, ep: PodEndpoint) -> str | None:
        """None when the endpoint's API answers its health route with our key, else why not."""
        try:
            await self._call("GET", ep, "/health")
        except PodError as e:
            return str(e)
        return None

    async def run(self, ep: PodEndpoint, image_url: str, audio_url: str, options: dict) -> str:
        """Submit the job; its serverless id."""
        body = await self._call("POST", ep, "/run", json=serverless_input(image_url, audio_url, options))
        if not body.get("id"):
            raise PodError(f"{ep.url}/run answered no job id: {json.dumps(body)[:200]}")
        return str(body["id"])

    async def cancel(self, ep: PodEndpoint, job_id: str) -> None:
        """Best effort: an abandoned attempt should not keep a worker busy."""
        try:
            await self._call("POST", ep, f"/cancel/{job_id}")
        except PodError as e:
            log.info("cancel of %s on %s failed: %s", job_id, ep.url, e)

    async def wait(self, ep: PodEndpoint, job_id: str, on_progress: ProgressFn) -> dict:
        """Poll until COMPLETED (the job's `output`) or a failed state (RemoteJobFailed). An endpoint that stops
        answering for POLL_FAILURES_BEFORE_DOWN polls in a row raises PodError."""
        interval_s = self.settings.poll_interval_ms / 1000
        failures = 0
        while True:
            try:
                body = await self._call("GET", ep, f"/status/{job_id}")
                failures = 0
            except PodError:
                failures += 1
                if failures >= c.POLL_FAILURES_BEFORE_DOWN:
                    raise
                await asyncio.sleep(interval_s)
                continue
            status = str(body.get("status") or "")
            if status == c.SERVERLESS_SUCCEEDED:
                output = body.get("output")
                if isinstance(output, dict) and output.get("error"):
                    raise RemoteJobFailed(*error_of({"error": output["error"]}))
                if not isinstance(output, dict):
                    raise PodError(f"{ep.url}: job {job_id} completed without an output object")
                return output
            if status in c.SERVERLESS_FAILED_STATES:
                raise RemoteJobFailed(*error_of(body))
            if status not in c.SERVERLESS_WAITING_STATES:
                raise PodError(f"{ep.url}: job {job_id} has the unknown status {status!r}")
            percent = progress_percent(body.get("output"))
            if percent is not None:
                await on_progress({"progress": {"percent": percent}})
            await asyncio.sleep(interval_s)
