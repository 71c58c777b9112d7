"""The part of the job manager that runs one queued job: start -> render -> publish -> settle.

`JobExecution` is a mixin of `JobManager` (same object, same state); every status change it causes goes
through the manager's `_start_running` and `finish`. The render itself is `jobs.runner.run_render`, which
returns a typed `Outcome` and touches no record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PublishFailed
from .models import Job, JobStatus
from .pool import Worker
from .progress import ProgressTracker, stages_for
from .render import RenderRequest, RenderResult
from .runner import CancelToken, Outcome, failure_outcome, is_disk_full, run_render

if TYPE_CHECKING:
    from .manager import JobManager

log = logging.getLogger(__name__)
PROGRESS_EVENT_INTERVAL_S = 5.0  # job.progress webhooks are throttled to one per this many seconds


@dataclass
class ActiveRun:
    """What the manager keeps of a running job: its stop flag and its progress tracker."""

    cancel: CancelToken
    tracker: ProgressTracker
    last_save: float = 0.0
    last_event: float = 0.0


def render_summary(result: RenderResult) -> dict[str, Any]:
    """What the job's `result` keeps of a render (the stored object's key, URL and size are added later)."""
    return {"duration_s": round(result.duration_s, 3), "frames": result.frames, "width": result.width,
            "height": result.height, **{k: result.info[k] for k in ("face_detector", "seed") if k in result.info}}


class JobExecution:
    async def _run_job(self: JobManager, worker: Worker, job: Job) -> None:
        run = ActiveRun(CancelToken(), ProgressTracker(self.speeds, stages_for(job.options.enhancer)))
        if not await self._start_running(job, run):
            await asyncio.sleep(self.config.save_retry_s)
            return
        started = time.monotonic()
        outcome = await run_render(worker, self._request(job), lambda *report: self._on_progress(job, run, *report),
                                   run.cancel, self.config.job_timeout_s)
        if outcome.status is JobStatus.SUCCEEDED and outcome.result is not None:
            job.result = render_summary(outcome.result)
            outcome = await self._publish(job, run, Path(outcome.result.video_path))
        await self._settle(job, run, outcome)
        if outcome.pending is not None:
            await asyncio.wait([outcome.pending])  # the thread must be free before this worker takes another job
        await self._clean_up(job, run)
        self.avg_run_s = 0.8 * self.avg_run_s + 0.2 * (time.monotonic() - started)

    def _request(self: JobManager, job: Job) -> RenderRequest:
        out_dir = self.render_dir(job.id)
        out_dir.mkdir(parents=True, exist_ok=True)
        refs = {name: Path(job.inputs[name]) if job.inputs.get(name) else None for name in ("ref_eyeblink", "ref_pose")}
        return RenderRequest(job.id, Path(job.inputs["image"]), Path(job.inputs["audio"]), out_dir / "output.mp4",
                             job.options, **refs)

    async def _publish(self: JobManager, job: Job, run: ActiveRun, video: Path) -> Outcome:
        """Stores the video (the publish hook retries); when that fails the MP4 is kept for retry-upload."""
        self._on_progress(job, run, "upload", 0, 1)
        try:
            if self.hooks.publish is not None:
                stored = await self.hooks.publish(job, video)
            else:
                stored = await asyncio.to_thread(self.workdir.keep_locally, job.id, video)
        except BaseException as e:  # also a shutdown cancelling the retries: the render must not be lost
            if run.cancel.reason != "deleted":
                self._keep_unpublished(job, video)
            if not isinstance(e, Exception):
                raise
            if is_disk_full(e) and not job.unpublished:  # nothing could be kept: storage_full
                return failure_outcome(e, run.cancel.reason)
            return failure_outcome(PublishFailed(f"the video could not be stored ({e}); it is kept: "
                                                 f"POST /v1/jobs/{job.id}/retry-upload stores it again"),
                                   run.cancel.reason)
        job.result = {**(job.result or {}), **stored}
        if job.unpublished:
            Path(job.unpublished).unlink(missing_ok=True)
            job.unpublished = None
        self._on_progress(job, run, "upload", 1, 1)
        job.progress.eta_s = 0.0
        return Outcome(JobStatus.SUCCEEDED)

    def _keep_unpublished(self: JobManager, job: Job, video: Path) -> None:
        kept = self.workdir.keep_unpublished(job.id, video)
        if kept is not None:
            job.unpublished = str(kept)
            self.records.save(job)
            log.warning("job %s: upload failed; the video is kept at %s", job.id, kept, extra={"job_id": job.id})

    async def _settle(self: JobManager, job: Job, run: ActiveRun, outcome: Outcome) -> None:
        if run.cancel.reason == "deleted" or job.status.is_terminal():
            return
        ended = run.tracker.end_stage()
        if ended is not None and self.hooks.on_stage is not None:
            self.hooks.on_stage(*ended)
        if outcome.status is JobStatus.SUCCEEDED:
            run.tracker.record_speeds()
        await self.finish(job, outcome.status, outcome.failure)

    async def _clean_up(self: JobManager, job: Job, run: ActiveRun) -> None:
        self._active.pop(job.id, None)
        await asyncio.to_thread(self.workdir.remove_render_dir, job.id)
        if run.cancel.reason == "deleted":  # deleted while rendering or publishing: nothing of it may stay behind
            await asyncio.to_thread(self.remove_files, job)

    async def _republish(self: JobManager, job: Job, run: ActiveRun) -> None:
        self._active[job.id] = run
        outcome = await self._publish(job, run, Path(job.unpublished or ""))
        await self._settle(job, run, outcome)
        await self._clean_up(job, run)

    def _on_progress(self: JobManager, job: Job, run: ActiveRun, stage: str, done: int, total: int) -> None:
        if job.status is not JobStatus.RUNNING or run.cancel.reason:
            return
        ended = run.tracker.update(stage, done, total)
        if ended is not None and self.hooks.on_stage is not None:
            self.hooks.on_stage(*ended)
        job.touch()
        now = time.monotonic()
        if ended is not None or now - run.last_save >= self.config.progress_save_interval_s:
            run.last_save = now
            self.records.save(job)
        self.notify(job)
        if "job.progress" in job.webhook_events and now - run.last_event >= PROGRESS_EVENT_INTERVAL_S:
            run.last_event = now
            task = asyncio.get_running_loop().create_task(self.emit("job.progress", job))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)
