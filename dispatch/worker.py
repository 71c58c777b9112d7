"""`python -m dispatch.worker`: take jobs from the BullMQ queue and run each on a GPU pod.

One attempt: download the inputs (caps, address guard) -> pick a healthy target round-robin -> upload to a
pod (or submit the input URLs to a RunPod serverless endpoint) -> poll, mirroring progress into the BullMQ
job -> return `{videoUrl, ...}`. A video a legacy pod answers with, or a serverless worker returns inline, is
stored with the configured storage first. Any failure a retry can fix
raises, and BullMQ retries the job with its backoff (the failed pod is skipped meanwhile); failures no
retry can fix (bad inputs, a refused address) raise UnrecoverableError so the job fails at once.
Failure reasons read `<code>: <message>`. SIGTERM stops taking jobs and waits for the active ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from bullmq import Job, UnrecoverableError, Worker
from pydantic import ValidationError

import urlguard
from dispatch import constants as c
from dispatch.endpoints import (
    POD,
    SERVERLESS,
    Discovery,
    DiscoveryError,
    EndpointConfigError,
    NoHealthyPod,
    PodEndpoint,
    PodPool,
    discover_runpod,
    parse_static_endpoints,
    refresh_forever,
)
from dispatch.inputs import download_inputs
from dispatch.payload import InvalidJobData, JobPayload, parse_payload
from dispatch.pods import PodClient, PodError, ProgressFn, RemoteJobFailed
from dispatch.serverless import ServerlessClient, save_data_uri
from dispatch.settings import DispatchSettings
from dispatch.videos import VideoStore, VideoStoreConfigError, VideoStoreError

log = logging.getLogger(__name__)

DOWNLOADED_PERCENT = 5  # BullMQ progress after the inputs are in; the pod's 0-100 maps onto 5-99


class AttemptFailed(RuntimeError):
    """One attempt failed in a way a retry (another pod, later) may fix."""


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}{f':{parts.port}' if parts.port else ''}").geturl()


def _unrecoverable(code: str, message: str) -> UnrecoverableError:
    return UnrecoverableError(f"{code}: {message}")


class Dispatcher:
    """The long-lived resources of one worker process: HTTP client, pod pool, BullMQ worker."""

    def __init__(self, settings: DispatchSettings):
        self.settings = settings
        self.http: httpx.AsyncClient | None = None
        self.pool = PodPool(parse_static_endpoints(settings.runpod_endpoints), settings.pod_cooldown_ms / 1000)
        self.pods: PodClient | None = None
        self.serverless: ServerlessClient | None = None
        self.videos = VideoStore(settings)
        self.worker: Worker | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        s = self.settings
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(c.POD_REQUEST_TIMEOUT_S,
                                                            connect=c.POD_CONNECT_TIMEOUT_S))
        self.pods = PodClient(self.http, s)
        self.serverless = ServerlessClient(self.http, s)
        if s.discovery_enabled:
            self._tasks.append(asyncio.create_task(
                refresh_forever(self.pool, Discovery(self._discover), s.runpod_refresh_ms / 1000)))
        if (s.legacy_pods or any(ep.kind == SERVERLESS for ep in self.pool.static)) and self.videos.problem():
            log.warning("%s", self.videos.problem())
        self.worker = Worker(s.queue_name, self.process, {
            "connection": s.redis_url, "prefix": c.BULLMQ_PREFIX, "autorun": False,
            "concurrency": s.worker_concurrency, "lockDuration": s.lock_duration_ms,
            "stalledInterval": s.lock_duration_ms, "runRetryDelay": s.redis_retry_ms,
            "name": "sadtalker-dispatch"})
        self.worker.on("error", lambda err, *_: log.warning("BullMQ worker: %s", err))
        self.worker.on("failed", lambda job, err: log.info("job %s attempt failed: %s", job.id, err))
        self._tasks.append(asyncio.create_task(self.worker.run()))
        log.info("dispatching queue %r from %s to %d static pod(s)%s", s.queue_name, _without_password(s.redis_url),
                 len(self.pool.static), " + RunPod discovery" if s.discovery_enabled else "")

    async def _discover(self) -> dict[str, list[PodEndpoint] | DiscoveryError]:
        s = self.settings
        token = (s.runpod_proxy_token or s.runpod_api_key) if s.token_query else None
        return await discover_runpod(
            self.http, api_url=s.runpod_api_url, api_key=s.runpod_api_key,
            endpoint_ids=s.runpod_endpoint_id_list, proxy_url=s.runpod_proxy_url, pod_port=s.runpod_pod_port,
            api_key_for_pods=s.remote_api_key or None, token_for_pods=token)

    async def _health(self, ep: PodEndpoint) -> str | None:
        return await (self.serverless.health(ep) if ep.kind == SERVERLESS else self.pods.health(ep))

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Stop taking jobs; wait up to `drain_timeout_s` for active ones, then abandon them (their
        BullMQ locks lapse and another worker takes them over: nothing is lost)."""
        if drain_timeout_s is None:
            drain_timeout_s = self.settings.drain_timeout_ms / 1000
        if self.worker is not None:
            closing = asyncio.ensure_future(self.worker.close())
            try:
                await asyncio.wait_for(asyncio.shield(closing), drain_timeout_s)
            except asyncio.TimeoutError:
                log.warning("drain timeout: abandoning %d active job(s)", len(self.worker.jobs))
                self.worker.cancelProcessing()
                await closing
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    async def process(self, job: Job, token: str) -> dict:
        """BullMQ processor: one attempt of one job, bounded by SADTALKER_JOB_TIMEOUT_MS."""
        try:
            payload = parse_payload(job.data)
        except InvalidJobData as e:
            raise _unrecoverable(e.code, str(e)) from e
        log.info("job %s attempt %d", job.id, job.attemptsMade + 1)
        timeout_s = self.settings.job_timeout_ms / 1000
        try:
            result = await asyncio.wait_for(self._attempt(job, payload), timeout_s)
        except asyncio.TimeoutError as e:  # not the builtin TimeoutError before Python 3.11
            raise AttemptFailed(f"timeout: the attempt took longer than {timeout_s:g} s "
                                "(SADTALKER_JOB_TIMEOUT_MS)") from e
        except (urlguard.BlockedURL, urlguard.TooLarge) as e:
            raise _unrecoverable(e.code, str(e)) from e
        except urlguard.FetchFailed as e:
            raise AttemptFailed(f"{e.code}: {e}") from e
        except RemoteJobFailed as e:
            if e.permanent:
                raise _unrecoverable(e.code, e.message) from e
            raise AttemptFailed(str(e)) from e
        except (PodError, NoHealthyPod) as e:
            raise AttemptFailed(f"{e.code}: {e}") from e
        except VideoStoreConfigError as e:
            raise _unrecoverable(e.code, str(e)) from e
        except VideoStoreError as e:
            raise AttemptFailed(f"{e.code}: {e}") from e
        await job.updateProgress(100)
        return result

    async def _attempt(self, job: Job, payload: JobPayload) -> dict:
        with tempfile.TemporaryDirectory(prefix="sadtalker-dispatch-") as tmp:
            inputs = _Inputs(self, payload, Path(tmp))
            if any(ep.kind == POD for ep in self.pool.endpoints) or not self.pool.endpoints:
                await inputs.files()  # caps and address guard before any pod is contacted
            else:
                await inputs.check_urls()  # serverless workers fetch the URLs themselves
            await job.updateProgress(DOWNLOADED_PERCENT)
            ep, answer = await self._submit(inputs)
        log.info("job %s on %s", job.id, ep.url)
        if ep.kind == SERVERLESS:
            return await self._serverless_result(job, ep, answer["id"])
        if "video_file" in answer:
            return {**self._result(ep, {}, video_url=""), **await self._stored(job, Path(answer["video_file"]))}
        if self.settings.legacy_pods or "status" not in answer:
            return self._result(ep, answer)
        try:
            final = await self.pods.wait(ep, answer, _progress_mirror(job))
        except PodError as e:
            self.pool.mark_down(ep, str(e))
            raise
        except asyncio.CancelledError:
            await self.pods.cancel(ep, answer["id"])
            raise
        return self._result(ep, final)

    async def _submit(self, inputs: _Inputs) -> tuple[PodEndpoint, dict]:
        """Hand the job to the next healthy target; one that refuses it is skipped for the next one."""
        tried: set[str] = set()
        while True:
            ep = await self.pool.acquire(self._health, exclude=tried)
            tried.add(ep.url)
            try:
                if ep.kind == SERVERLESS:
                    p = inputs.payload
                    return ep, {"id": await self.serverless.run(ep, p.image_url, p.audio_url, p.options)}
                image, audio = await inputs.files()
                return ep, await self.pods.create(ep, image, audio, inputs.payload.options)
            except PodError as e:
                self.pool.mark_down(ep, str(e))

    async def _serverless_result(self, job: Job, ep: PodEndpoint, remote_id: str) -> dict:
        try:
            output = await self.serverless.wait(ep, remote_id, _progress_mirror(job))
        except PodError as e:
            self.pool.mark_down(ep, str(e))
            raise
        except asyncio.CancelledError:
            await self.serverless.cancel(ep, remote_id)
            raise
        url = output.get("video_url") or output.get("videoUrl")
        if not isinstance(url, str) or not url:
            raise PodError(f"{ep.url}: the serverless output names no video_url")
        result = self._result(ep, {"id": remote_id, "result": output}, video_url=url)
        if url.startswith("data:"):
            result.update(await self._stored(job, save_data_uri(url, c.LEGACY_VIDEO_MAX_BYTES)))
        return result

    async def _stored(self, job: Job, video: Path) -> dict:
        stored = await self.videos.publish(video, str(job.id))
        return {"videoUrl": stored["video_url"], "bytes": stored["bytes"], "storage": stored["storage"]}

    def _result(self, ep: PodEndpoint, answer: dict, video_url: str | None = None) -> dict:
        result = answer.get("result") if isinstance(answer.get("result"), dict) else {}
        return {
            "videoUrl": self.pods.video_url(ep, answer) if video_url is None else video_url,
            "remoteJobId": answer.get("id"), "pod": ep.url, "target": ep.kind,
            "durationS": result.get("duration_s"), "frames": result.get("frames"),
            "width": result.get("width"), "height": result.get("height"), "bytes": result.get("bytes"),
            "storage": result.get("storage"), "faceDetector": result.get("face_detector"),
            "posterUrl": urljoin(ep.url + "/", result["poster_url"]) if result.get("poster_url") else None,
        }


class _Inputs:
    """A job's inputs for one attempt: downloaded once, when the first pod needs them."""

    def __init__(self, dispatcher: Dispatcher, payload: JobPayload, directory: Path):
        self.dispatcher, self.payload, self.directory = dispatcher, payload, directory
        self._files: tuple[Path, Path] | None = None

    async def files(self) -> tuple[Path, Path]:
        if self._files is None:
            d = self.dispatcher
            self._files = await download_inputs(d.http, self.payload, self.directory, d.settings)
        return self._files

    async def check_urls(self) -> None:
        allow = self.dispatcher.settings.allow_private_urls
        for url in (self.payload.image_url, self.payload.audio_url):
            await asyncio.to_thread(urlguard.check_url, url, allow_private=allow)


def _progress_mirror(job: Job) -> ProgressFn:
    """An on_progress callback writing the pod's percent into the BullMQ job when it changes."""
    last = DOWNLOADED_PERCENT

    async def mirror(remote: dict) -> None:
        nonlocal last
        percent = (remote.get("progress") or {}).get("percent") or 0.0
        value = DOWNLOADED_PERCENT + int(min(max(float(percent), 0.0), 100.0) * (99 - DOWNLOADED_PERCENT) / 100)
        if value != last:
            last = value
            await job.updateProgress(value)

    return mirror


async def serve(settings: DispatchSettings, stop: asyncio.Event) -> None:
    """Run a Dispatcher until `stop` is set, then drain."""
    dispatcher = Dispatcher(settings)
    await dispatcher.start()
    try:
        await stop.wait()
        log.info("stopping: draining active jobs")
    finally:
        await dispatcher.close()


async def _main(settings: DispatchSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = DispatchSettings()
        parse_static_endpoints(settings.runpod_endpoints)
    except (ValidationError, EndpointConfigError) as e:
        log.error("invalid configuration: %s", e)
        raise SystemExit(2) from e
    logging.getLogger().setLevel(settings.log_level.upper())
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
