"""`AsyncClient`: the asyncio twin of `Client` (same methods, awaited; `events` is an async iterator)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from .errors import ApiError, ConnectionFailed, JobFailed, WaitTimeout
from .models import Job, JobEvent, Preflight, RunResult
from .sse import SSEDecoder
from .wire import (
    DEFAULT_URL,
    SSE_READ_TIMEOUT_S,
    STREAM_ENDED_MESSAGE,
    JobInputs,
    RetryPolicy,
    check,
    headers_for,
    job_event,
    job_list,
    new_idempotency_key,
    reconnect_delay_s,
    translated_transport_errors,
)


class AsyncClient:
    """Talks to one service with one API key; `async with AsyncClient(url, key) as api: ...`."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None, retry: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers_for(api_key), timeout=timeout_s,
                                       transport=transport, follow_redirects=False)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, *, inputs: JobInputs | None = None,
                       **kwargs: Any) -> httpx.Response:
        """See `Client._request`: 429/503 retried as `self.retry` says."""
        payload = _read_files(inputs) if inputs is not None else None
        attempt = 0
        while True:
            attempt += 1
            with translated_transport_errors(self.base_url):
                response = await self._http.request(method, path, files=payload or None, **kwargs)
            delay = self.retry.delay_s(response, attempt)
            if delay is None:
                return check(response)
            await asyncio.sleep(delay)

    async def submit(self, image: str | Path | None = None, audio: str | Path | None = None, *,
                     idempotency_key: str | None = None, **options: Any) -> Job:
        """See `Client.submit`."""
        inputs = JobInputs(image=image, audio=audio, **options)
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}  # retries never make two jobs
        response = await self._request("POST", "/v1/jobs", inputs=inputs, data=inputs.form_fields(), headers=headers)
        return Job.from_dict(response.json())

    async def preflight(self, image: str | Path | None = None, audio: str | Path | None = None,
                        **options: Any) -> Preflight:
        inputs = JobInputs(image=image, audio=audio, **options)
        response = await self._request("POST", "/v1/preflight", inputs=inputs, data=inputs.form_fields())
        return Preflight.from_dict(response.json())

    async def get(self, job_id: str) -> Job:
        return Job.from_dict((await self._request("GET", f"/v1/jobs/{job_id}")).json())

    async def list(self, limit: int = 20) -> list[Job]:
        return job_list((await self._request("GET", "/v1/jobs", params={"limit": limit})).json())

    async def cancel(self, job_id: str) -> Job:
        return Job.from_dict((await self._request("POST", f"/v1/jobs/{job_id}/cancel")).json())

    async def events(self, job_id: str, *, last_event_id: str | None = None) -> AsyncIterator[JobEvent]:
        """See `Client.events`: reconnects and resumes with `Last-Event-ID`, ends after the terminal event."""
        attempt = 0
        while True:
            try:
                async for event in self._stream_once(job_id, last_event_id):
                    attempt = 0
                    last_event_id = event.id or last_event_id
                    yield event
                    if event.job.terminal:
                        return
            except ConnectionFailed as e:
                failure: ConnectionFailed = e
            else:  # the stream ended before the job (a proxy cut it): resume where it stopped
                failure = ConnectionFailed(STREAM_ENDED_MESSAGE)
            attempt += 1  # reset by every event, so only a stream that keeps failing gives up
            delay = reconnect_delay_s(attempt)
            if delay is None:
                raise failure
            await asyncio.sleep(delay)

    async def wait(self, job_id: str, *, on_progress: Callable[[Job], None] | None = None,
                   timeout_s: float | None = None) -> Job:
        """See `Client.wait`."""
        started = time.monotonic()

        async def follow() -> Job:
            async for event in self.events(job_id):
                if on_progress is not None:
                    on_progress(event.job)
                if event.job.terminal:
                    return event.job
            return await self.get(job_id)

        try:
            return await asyncio.wait_for(follow(), timeout_s)
        except asyncio.TimeoutError as e:
            waited = time.monotonic() - started
            raise WaitTimeout(f"job {job_id} not finished after {waited:.0f} s; it keeps running") from e

    async def _stream_once(self, job_id: str, last_event_id: str | None) -> AsyncIterator[JobEvent]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self._http.timeout.connect, read=SSE_READ_TIMEOUT_S)
        decoder = SSEDecoder()
        with translated_transport_errors(self.base_url):
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                         timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check(response)
                async for line in response.aiter_lines():
                    sse = decoder.feed(line)
                    if sse is not None:
                        yield job_event(sse)

    async def run(self, image: str | Path | None = None, audio: str | Path | None = None,
                  out: str | Path | None = None, *, on_progress: Callable[[Job], None] | None = None,
                  timeout_s: float | None = None, idempotency_key: str | None = None, **options: Any) -> RunResult:
        """See `Client.run`."""
        job = await self.submit(image, audio, idempotency_key=idempotency_key, **options)
        job = await self.wait(job.id, on_progress=on_progress, timeout_s=timeout_s)
        if job.status != "succeeded":
            raise JobFailed(job)
        return RunResult(job, await self.download(job.id, out))

    async def download(self, job_id: str, dest: str | Path | None = None) -> Path:
        """See `Client.download`."""
        path = Path(dest) if dest is not None else Path(f"{job_id}.mp4")
        if path.is_dir():
            path = path / f"{job_id}.mp4"
        partial = path.with_name(path.name + ".part")
        try:
            with translated_transport_errors(self.base_url):
                async with self._http.stream("GET", f"/v1/jobs/{job_id}/video") as response:
                    if response.is_redirect:  # object storage: fetch it there, without our API key
                        async with httpx.AsyncClient(follow_redirects=True, timeout=self._http.timeout) as plain, \
                                plain.stream("GET", response.headers["location"]) as remote:
                            await _save(remote, partial)
                    else:
                        await _save(response, partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        return path


async def _save(response: httpx.Response, path: Path) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise ApiError.from_response(response)
    with path.open("wb") as out:
        async for chunk in response.aiter_bytes(1 << 16):
            out.write(chunk)


def _read_files(inputs: JobInputs) -> dict[str, tuple[str, bytes]]:
    """httpx's async multipart wants bytes, not sync file handles (read once, sent on every try)."""
    with inputs.open_files() as files:
        return {name: (filename, handle.read()) for name, (filename, handle) in files.items()}
