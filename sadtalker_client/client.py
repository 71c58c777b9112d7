"""`Client`: the synchronous Python client of the `/v1/jobs` API (httpx)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
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

ProgressCallback = Callable[[Job], None]
MIN_READ_TIMEOUT_S = 0.05


class Client:
    """Talks to one service with one API key. Use as a context manager, or call `close()`.

    >>> with Client("http://127.0.0.1:8888", "dev-key") as api:
    ...     job = api.submit("face.png", "speech.wav", preprocess="full", still=True)
    ...     job = api.wait(job.id, on_progress=lambda j: print(j.progress.percent))
    ...     api.download(job.id, "out.mp4")
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout_s: float = 60.0,
                 transport: httpx.BaseTransport | None = None, retry: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(base_url=self.base_url, headers=headers_for(api_key), timeout=timeout_s,
                                  transport=transport, follow_redirects=False)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, inputs: JobInputs | None = None, **kwargs: Any) -> httpx.Response:
        """One call, retried on 429/503 as `self.retry` says; `inputs`' files are opened afresh for each try."""
        attempt = 0
        while True:
            attempt += 1
            with translated_transport_errors(self.base_url), \
                    (inputs.open_files() if inputs is not None else contextlib.nullcontext({})) as files:
                response = self._http.request(method, path, files=files or None, **kwargs)
            delay = self.retry.delay_s(response, attempt)
            if delay is None:
                return check(response)
            time.sleep(delay)

    def submit(self, image: str | Path | None = None, audio: str | Path | None = None, *,
               idempotency_key: str | None = None, **options: Any) -> Job:
        """Queues a job. `image`/`audio` are local files (or pass `image_url=`/`audio_url=`); `options` are
        the `JobInputs` fields (preprocess, still, enhancer, size, pose_style, expression_scale, batch_size,
        seed, webhook_url, metadata). Input problems (no face, bad audio) raise ApiError before queueing."""
        inputs = JobInputs(image=image, audio=audio, **options)
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}  # retries never make two jobs
        response = self._request("POST", "/v1/jobs", inputs=inputs, data=inputs.form_fields(), headers=headers)
        return Job.from_dict(response.json())

    def preflight(self, image: str | Path | None = None, audio: str | Path | None = None,
                  **options: Any) -> Preflight:
        """Checks the inputs the way a job would (face found? audio readable?) without queueing anything."""
        inputs = JobInputs(image=image, audio=audio, **options)
        response = self._request("POST", "/v1/preflight", inputs=inputs, data=inputs.form_fields())
        return Preflight.from_dict(response.json())

    def get(self, job_id: str) -> Job:
        return Job.from_dict(self._request("GET", f"/v1/jobs/{job_id}").json())

    def list(self, limit: int = 20) -> list[Job]:
        """The API key's most recent jobs, newest first."""
        return job_list(self._request("GET", "/v1/jobs", params={"limit": limit}).json())

    def cancel(self, job_id: str) -> Job:
        """Asks the service to cancel; a running job stops at its next batch boundary."""
        return Job.from_dict(self._request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def events(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """The job's live events, ending with the terminal one. Reconnects on a dropped stream, resuming
        after the last event seen (`Last-Event-ID`)."""
        for event in self._events_with_heartbeats(job_id, last_event_id):
            if event is not None:
                yield event

    def wait(self, job_id: str, *, on_progress: ProgressCallback | None = None,
             timeout_s: float | None = None) -> Job:
        """Blocks until the job is terminal and returns it (check `job.status`); `on_progress(job)` is called on
        every event. Raises WaitTimeout after about `timeout_s` (the job keeps running)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for event in self._events_with_heartbeats(job_id, None, deadline):
            if event is not None:
                if on_progress is not None:
                    on_progress(event.job)
                if event.job.terminal:
                    return event.job
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id} not finished after {timeout_s:g} s; it keeps running")
        return self.get(job_id)  # not reached: the stream ends with a terminal event

    def _events_with_heartbeats(self, job_id: str, last_event_id: str | None, deadline: float | None = None
                                ) -> Iterator[JobEvent | None]:
        """Events, with None for every heartbeat so callers can check their deadline on a quiet stream; a
        connection that stays silent past `deadline` yields None too."""
        attempt = 0
        while True:
            read_timeout_s = SSE_READ_TIMEOUT_S
            if deadline is not None:
                read_timeout_s = min(read_timeout_s, max(deadline - time.monotonic(), MIN_READ_TIMEOUT_S))
            try:
                for item in self._stream_once(job_id, last_event_id, read_timeout_s):
                    if item is not None:
                        attempt = 0
                        last_event_id = item.id or last_event_id
                    yield item
                    if item is not None and item.job.terminal:
                        return
            except ConnectionFailed as e:
                if deadline is not None and time.monotonic() >= deadline:
                    yield None  # a quiet stream, not a broken one: the caller's deadline has passed
                    continue
                failure: ConnectionFailed = e
            else:  # the stream ended before the job (a proxy cut it): resume where it stopped
                failure = ConnectionFailed(STREAM_ENDED_MESSAGE)
            attempt += 1  # reset by every event, so only a stream that keeps failing gives up
            delay = reconnect_delay_s(attempt)
            if delay is None:
                raise failure
            time.sleep(delay)

    def _stream_once(self, job_id: str, last_event_id: str | None, read_timeout_s: float
                     ) -> Iterator[JobEvent | None]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout_s)
        decoder = SSEDecoder()
        with translated_transport_errors(self.base_url), self._http.stream(
                "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                check(response)
            for line in response.iter_lines():
                sse = decoder.feed(line)
                if sse is not None:
                    yield job_event(sse)
                elif line.startswith(":"):
                    yield None

    def run(self, image: str | Path | None = None, audio: str | Path | None = None, out: str | Path | None = None,
            *, on_progress: ProgressCallback | None = None, timeout_s: float | None = None,
            idempotency_key: str | None = None, **options: Any) -> RunResult:
        """Submits, follows and downloads: the finished job and the saved video (`out`, default `<job id>.mp4`).
        Raises JobFailed when the job fails or is canceled, ApiError when the service refuses the inputs."""
        job = self.submit(image, audio, idempotency_key=idempotency_key, **options)
        job = self.wait(job.id, on_progress=on_progress, timeout_s=timeout_s)
        if job.status != "succeeded":
            raise JobFailed(job)
        return RunResult(job, self.download(job.id, out))

    def download(self, job_id: str, dest: str | Path | None = None, *,
                 on_bytes: Callable[[int, int | None], None] | None = None) -> Path:
        """Saves the finished video to `dest` (default `<job_id>.mp4`; a directory gets that name inside);
        `on_bytes(done, total)` reports progress. Raises ApiError `job_not_finished` before it is done."""
        path = Path(dest) if dest is not None else Path(f"{job_id}.mp4")
        if path.is_dir():
            path = path / f"{job_id}.mp4"
        partial = path.with_name(path.name + ".part")
        try:
            with translated_transport_errors(self.base_url), self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/video") as response:
                if response.is_redirect:  # object storage: fetch it there, without our API key
                    location = response.headers["location"]
                    with httpx.stream("GET", location, follow_redirects=True,
                                      timeout=self._http.timeout) as remote:
                        _save(remote, partial, on_bytes)
                else:
                    _save(response, partial, on_bytes)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        return path


def _save(response: httpx.Response, path: Path, on_bytes: Callable[[int, int | None], None] | None) -> None:
    if response.status_code >= 400:
        response.read()
        raise ApiError.from_response(response)
    total = int(response.headers["content-length"]) if "content-length" in response.headers else None
    done = 0
    with path.open("wb") as out:
        for chunk in response.iter_bytes(1 << 16):
            out.write(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done, total)
