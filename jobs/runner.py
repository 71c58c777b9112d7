"""Runs one job on one worker: render in the worker's thread, progress back on the loop, timeout, cancel, publish."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PublishFailed, RenderTimeout
from .models import STAGE_WEIGHTS, Job, JobStatus, empty_progress, stage_percent
from .pool import Worker
from .render import RenderRequest, RenderResult

if TYPE_CHECKING:
    from .manager import JobManager

log = logging.getLogger(__name__)
PROGRESS_EVENT_INTERVAL_S = 5.0  # job.progress webhooks are throttled to one per this many seconds


def render_summary(result: RenderResult) -> dict[str, Any]:
    """What the job's `result` keeps of a render (the stored object's key, URL and size are added later)."""
    return {"duration_s": round(result.duration_s, 3), "frames": result.frames, "width": result.width,
            "height": result.height, **{k: result.info[k] for k in ("face_detector", "seed") if k in result.info}}


class ActiveRun:
    """The cancel flag the renderer polls at batch boundaries, and why it was raised."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.reason: str | None = None  # canceled | timeout | shutdown | deleted
        self.future: asyncio.Future | None = None
        self.stage: str | None = None
        self.stage_started = time.monotonic()
        self.last_save = 0.0
        self.last_event = 0.0

    def request_stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._stop.set()

    def should_cancel(self) -> bool:
        return self._stop.is_set()


class JobRunner:
    def __init__(self, manager: JobManager):
        self.manager = manager
        self._event_tasks: set[asyncio.Task] = set()

    async def run(self, worker: Worker, job: Job) -> None:
        manager, run = self.manager, ActiveRun()
        await self._mark_running(job, run)
        started = time.monotonic()
        try:
            result = await self._render(worker, job, run)
            if run.reason:
                raise RuntimeError(f"stopped ({run.reason})")
            job.result = render_summary(result)
            await self._publish(job, run, Path(result.video_path))
            status, error = JobStatus.SUCCEEDED, None
        except Exception as e:
            status, error = self._failure(job, run, e)
        await self._settle(job, run, status, error)
        if run.future is not None and not run.future.done():
            await asyncio.wait([run.future])  # the thread must be free before this worker takes another job
        await self._clean_up(job, run)
        manager.avg_run_s = 0.8 * manager.avg_run_s + 0.2 * (time.monotonic() - started)

    async def republish(self, job: Job) -> None:
        """Uploads the video a failed upload left on disk again (the job is already marked running)."""
        run = ActiveRun()
        self.manager.track(job, run)
        try:
            await self._publish(job, run, Path(job.unpublished or ""))
            status, error = JobStatus.SUCCEEDED, None
        except Exception as e:
            status, error = self._failure(job, run, e)
        await self._settle(job, run, status, error)
        await self._clean_up(job, run)

    async def _settle(self, job: Job, run: ActiveRun, status: JobStatus, error: dict[str, str] | None) -> None:
        if run.reason != "deleted" and not job.status.is_terminal():
            self._stage_done(run)
            await self.manager.finish(job, status, error)

    async def _clean_up(self, job: Job, run: ActiveRun) -> None:
        manager = self.manager
        manager.track(job, None)
        await asyncio.to_thread(shutil.rmtree, manager.render_dir(job.id), True)
        if run.reason == "deleted":  # deleted while rendering or publishing: nothing of it may stay behind
            await asyncio.to_thread(manager.remove_files, job)

    async def _mark_running(self, job: Job, run: ActiveRun) -> None:
        job.status, job.started_at, job.error = JobStatus.RUNNING, time.time(), None
        job.attempts += 1
        job.progress = empty_progress()
        job.touch()
        self.manager.store.save(job)
        self.manager.track(job, run)
        log.info("job %s running (attempt %d)", job.id, job.attempts, extra={"job_id": job.id})
        self.manager.notify(job)
        await self.manager.emit("job.started", job)

    def _request(self, job: Job) -> RenderRequest:
        out_dir = self.manager.render_dir(job.id)
        out_dir.mkdir(parents=True, exist_ok=True)
        refs = {name: Path(job.inputs[name]) if job.inputs.get(name) else None for name in ("ref_eyeblink", "ref_pose")}
        return RenderRequest(job.id, Path(job.inputs["image"]), Path(job.inputs["audio"]), out_dir / "output.mp4",
                             {**job.options, **refs})

    async def _render(self, worker: Worker, job: Job, run: ActiveRun) -> RenderResult:
        loop = asyncio.get_running_loop()

        def progress(stage: str, done: int, total: int) -> None:  # called from the worker thread
            loop.call_soon_threadsafe(self._on_progress, job, run, stage, done, total)

        assert worker.renderer is not None
        run.future = loop.run_in_executor(
            worker.executor, worker.renderer.render, self._request(job), progress, run.should_cancel
        )
        timeout_s = self.manager.config.job_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(run.future), timeout_s)
        except TimeoutError as e:
            run.request_stop("timeout")
            raise RenderTimeout(f"the job took longer than the limit of {timeout_s:g} s") from e

    async def _publish(self, job: Job, run: ActiveRun, video: Path) -> None:
        """Stores the video (the publish hook retries); when that fails the MP4 is kept for retry-upload."""
        self._on_progress(job, run, "upload", 0, 1)
        publish = self.manager.hooks.publish or self._keep_locally
        try:
            stored = await publish(job, video)
        except BaseException as e:  # also a shutdown cancelling the retries: the render must not be lost
            if run.reason != "deleted":
                self._keep_unpublished(job, video)
            if isinstance(e, Exception):
                raise PublishFailed(f"the video could not be stored ({e}); it is kept: "
                                    f"POST /v1/jobs/{job.id}/retry-upload stores it again") from e
            raise
        job.result = {**(job.result or {}), **stored}
        if job.unpublished:
            Path(job.unpublished).unlink(missing_ok=True)
            job.unpublished = None
        self._on_progress(job, run, "upload", 1, 1)
        job.progress["eta_s"] = 0.0

    def _keep_unpublished(self, job: Job, video: Path) -> None:
        """Moves the rendered MP4 out of the render folder (removed after the run) and records where."""
        kept = self.manager.unpublished_path(job.id)
        if video != kept and video.is_file():
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(video), kept)
        if kept.is_file():
            job.unpublished = str(kept)
            self.manager.store.save(job)
            log.warning("job %s: upload failed; the video is kept at %s", job.id, kept, extra={"job_id": job.id})

    async def _keep_locally(self, job: Job, video: Path) -> dict[str, Any]:
        """Publishing without a storage backend: the video moves to <work dir>/videos/<job id>.mp4."""
        dest = self.manager.config.work_dir / "videos" / f"{job.id}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.move, str(video), dest)
        return {"key": str(dest), "url": None, "storage": "local", "bytes": dest.stat().st_size}

    def _failure(self, job: Job, run: ActiveRun, e: Exception) -> tuple[JobStatus, dict[str, str] | None]:
        if run.reason == "timeout":
            return JobStatus.FAILED, {"code": "timeout", "message": str(e)}
        if run.reason == "canceled":
            return JobStatus.CANCELED, {"code": "canceled", "message": "canceled by the client"}
        if run.reason in ("shutdown", "deleted"):
            return JobStatus.FAILED, {"code": "interrupted", "message": "the service shut down"}
        code = getattr(e, "code", None)
        if isinstance(code, str) and code:
            status = JobStatus.CANCELED if code == "canceled" else JobStatus.FAILED
            return status, {"code": code, "message": str(e) or code}
        log.error("job %s: render failed", job.id, exc_info=e, extra={"job_id": job.id})
        return JobStatus.FAILED, {"code": "render_failed", "message": f"{type(e).__name__}: {e}"}

    def _stage_done(self, run: ActiveRun) -> None:
        if run.stage is not None and self.manager.hooks.on_stage is not None:
            self.manager.hooks.on_stage(run.stage, time.monotonic() - run.stage_started)
        run.stage = None

    def _on_progress(self, job: Job, run: ActiveRun, stage: str, done: int, total: int) -> None:
        if job.status is not JobStatus.RUNNING or run.reason or stage not in STAGE_WEIGHTS:
            return
        changed_stage = stage != run.stage
        if changed_stage:
            self._stage_done(run)
            run.stage, run.stage_started = stage, time.monotonic()
        progress = job.progress
        progress["stage"] = stage
        progress["percent"] = max(progress["percent"], stage_percent(stage, done, total))
        if stage == "render":
            progress["frames_done"], progress["frames_total"] = done, total
        if progress["frames_total"] and progress["percent"] > 0 and job.started_at:
            elapsed_s = time.time() - job.started_at
            progress["eta_s"] = round(elapsed_s * (100 - progress["percent"]) / progress["percent"], 1)
        job.touch()
        now = time.monotonic()
        if changed_stage or now - run.last_save >= self.manager.config.progress_save_interval_s:
            run.last_save = now
            self.manager.store.save(job)
        self.manager.notify(job)
        if "job.progress" in job.webhook_events and now - run.last_event >= PROGRESS_EVENT_INTERVAL_S:
            run.last_event = now
            task = asyncio.get_running_loop().create_task(self.manager.emit("job.progress", job))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)
