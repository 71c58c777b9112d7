"""The job manager: one per process. Owns the queue, job states and transitions, durability and recovery.

Submissions are recorded in SQLite before they are acknowledged; one asyncio task per worker takes the oldest
queued job and runs it through `jobs.runner`. Results are published and events emitted through callables
that `api_app` injects, so this package imports neither storage nor webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import (
    IdempotencyConflict,
    JobNotFound,
    JobNotRetryable,
    ModelsUnavailable,
    QueueFull,
    ShuttingDown,
)
from .models import Job, JobStatus, empty_progress, new_job_id, stage_percent
from .pool import Worker, WorkerPool
from .runner import ActiveRun, JobRunner
from .store import JobStore
from .watchers import Watchers

log = logging.getLogger(__name__)

PublishFn = Callable[[Job, Path], Awaitable[dict[str, Any]]]  # stores the MP4 (retrying): key, url, storage, bytes
VideoUrlFn = Callable[[Job], str | None]  # a succeeded job's current video URL (None: the stored/local one)
DiscardFn = Callable[[Job], None]  # blocking: forgets a deleted job elsewhere (its stored video, webhooks)
EventFn = Callable[[str, Job], Awaitable[None]]  # job.started, job.progress, job.succeeded, ...
StageFn = Callable[[str, float], None]  # (stage, seconds spent in it), for metrics
FinishFn = Callable[[Job], None]  # called once per job reaching a terminal state


@dataclass(frozen=True)
class ManagerConfig:
    work_dir: Path  # inputs/<job id>/ and renders/<job id>/ live here
    max_queue: int = 100
    job_timeout_s: float = 480.0
    shutdown_grace_s: float = 30.0
    retention_s: float = 0.0  # 0 keeps finished jobs forever
    idempotency_ttl_s: float = 24 * 3600.0
    max_attempts: int = 2  # a job that was running when the process died runs once more
    progress_save_interval_s: float = 1.0  # progress is persisted at most this often (and at stage changes)
    public_base_url: str | None = None
    keep_inputs: bool = False  # keep inputs/<job id>/ after the job ends (removed with the job)
    model_reload_s: float = 30.0  # a worker whose models were unavailable tries again this often; 0: never


@dataclass
class ManagerHooks:
    publish: PublishFn | None = None
    discard: DiscardFn | None = None
    on_event: EventFn | None = None
    on_stage: StageFn | None = None
    on_finish: FinishFn | None = None
    video_url: VideoUrlFn | None = None
    poster_url: VideoUrlFn | None = None


@dataclass
class NewJob:
    """A validated submission; `inputs` are files already under `manager.input_dir(id)`."""

    id: str
    owner: str
    options: dict[str, Any]
    inputs: dict[str, str]
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_events: list[str] = field(default_factory=list)
    origin: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


class JobManager:
    def __init__(self, store: JobStore, pool: WorkerPool, config: ManagerConfig, hooks: ManagerHooks | None = None):
        self.store, self.pool, self.config = store, pool, config
        self.hooks = hooks or ManagerHooks()
        self._queue: deque[str] = deque()
        self._jobs: dict[str, Job] = {}  # queued and running jobs (live progress); the store has the rest
        self._active: dict[str, ActiveRun] = {}
        self._watchers = Watchers()
        self._wakeup = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []
        self._uploads: set[asyncio.Task] = set()  # retry-upload runs
        self._closing = False
        self._runner = JobRunner(self)
        self.avg_run_s = 30.0  # moving average of job run time, for Retry-After

    # --- life cycle
    async def start(self) -> None:
        """Recovers unfinished jobs, starts the worker loops (models load in the background) and retention."""
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        for job in self.store.unfinished():
            await self._recover(job)
        self._tasks.append(asyncio.create_task(self.pool.start(), name="pool-start"))
        for worker in self.pool.workers:
            self._tasks.append(asyncio.create_task(self._worker_loop(worker), name=worker.name))
        if self.config.retention_s > 0:
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))

    async def _recover(self, job: Job) -> None:
        if job.status is JobStatus.RUNNING and job.unpublished:  # stopped during a retry-upload
            await self.finish(job, JobStatus.FAILED, self._upload_cut_short(job))
            return
        if job.status is JobStatus.RUNNING:
            if job.attempts >= self.config.max_attempts:
                message = f"the service stopped while this job was running ({job.attempts} attempts)"
                await self.finish(job, JobStatus.FAILED, {"code": "interrupted", "message": message})
                return
            log.warning("job %s was running when the service stopped; running it again", job.id)
            job.status, job.started_at = JobStatus.QUEUED, None
            job.progress = empty_progress()
            job.touch()
            self.store.save(job)
        self._jobs[job.id] = job
        self._queue.append(job.id)

    async def close(self) -> None:
        """Stops taking jobs, lets running ones finish within the grace period, then records them interrupted."""
        self._closing = True
        async with self._wakeup:
            self._wakeup.notify_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace_s
        if self._active:
            log.info("waiting up to %.0f s for %d running job(s)", self.config.shutdown_grace_s, len(self._active))
        while self._active and loop.time() < deadline:  # a run leaves _active once published and recorded
            await asyncio.sleep(0.05)
        for job_id, run in list(self._active.items()):
            run.request_stop("shutdown")
            job = self._jobs.get(job_id)
            if job is not None and not job.status.is_terminal():
                message = f"the service shut down before the job finished (grace {self.config.shutdown_grace_s:g} s)"
                error = {"code": "interrupted", "message": message}
                if run.stage == "upload":  # rendered: the video is kept (the publish step moves it) for retry-upload
                    error = self._upload_cut_short(job)
                await self.finish(job, JobStatus.FAILED, error)
        tasks = [*self._tasks, *self._uploads]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pool.close()

    @property
    def accepting(self) -> bool:
        return not self._closing

    def workers_alive(self) -> bool:
        loops = [t for t in self._tasks if t.get_name().startswith("worker-")]
        return bool(loops) and any(not t.done() for t in loops)

    # --- submissions and queries
    def input_dir(self, job_id: str) -> Path:
        return self.config.work_dir / "inputs" / job_id

    def render_dir(self, job_id: str) -> Path:
        return self.config.work_dir / "renders" / job_id

    def unpublished_path(self, job_id: str) -> Path:
        """Where a rendered MP4 whose upload failed is kept until retry-upload stores it."""
        return self.config.work_dir / "unpublished" / f"{job_id}.mp4"

    def _upload_cut_short(self, job: Job) -> dict[str, str]:
        return {"code": "storage_error", "message": "the service stopped during the upload; the video is kept: "
                f"POST /v1/jobs/{job.id}/retry-upload stores it"}

    @staticmethod
    def new_id() -> str:
        return new_job_id()

    def check_accepting(self) -> None:
        """Raises the error a submission would get right now (before any upload is read)."""
        if self._closing:
            raise ShuttingDown("the service is shutting down; retry on another instance")
        failure = self.pool.failure()
        if failure:
            raise ModelsUnavailable(failure["message"])
        if len(self._queue) >= self.config.max_queue:
            raise QueueFull(f"the queue is full ({self.config.max_queue} jobs waiting)", self.retry_after_s())

    def retry_after_s(self) -> int:
        per_worker = len(self._queue) / max(1, len(self.pool.workers))
        return int(min(3600, max(1, self.avg_run_s * max(per_worker, 1) / 2)))

    def replay(self, owner: str, key: str, request_hash: str) -> Job | None:
        """The job an earlier request with this idempotency key created, or None; 409 if it differed."""
        found = self.store.idempotent_job(owner, key, self.config.idempotency_ttl_s)
        if found is None:
            return None
        job_id, stored_hash = found
        if stored_hash != request_hash:
            raise IdempotencyConflict("this Idempotency-Key was used for a different request in the last 24 h")
        return self._jobs.get(job_id) or self.store.get(job_id)

    async def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Records and queues a job; returns (job, replayed). A replayed key returns the earlier job."""
        if new.idempotency_key and new.request_hash:
            earlier = self.replay(new.owner, new.idempotency_key, new.request_hash)
            if earlier is not None:
                return earlier, True
        self.check_accepting()
        job = Job(id=new.id, owner=new.owner, options=new.options, inputs=new.inputs, metadata=new.metadata,
                  webhook_url=new.webhook_url, webhook_events=new.webhook_events, origin=new.origin)
        self.store.save(job)
        if new.idempotency_key and new.request_hash:
            self.store.remember_key(new.owner, new.idempotency_key, new.request_hash, job.id)
        self._jobs[job.id] = job
        self._queue.append(job.id)
        log.info("job %s queued (position %d)", job.id, len(self._queue), extra={"job_id": job.id})
        async with self._wakeup:
            self._wakeup.notify()
        return job, False

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job, or JobNotFound (also for another owner's job, so ids leak nothing)."""
        job = self._jobs.get(job_id) or self.store.get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(f"no job {job_id}")
        return job

    def list(self, owner: str, *, status: JobStatus | None = None, limit: int = 20,
             after: str | None = None) -> list[Job]:
        before = self.get(after, owner) if after else None
        jobs = self.store.list(owner, status=status, limit=limit, before=before)
        return [self._jobs.get(job.id, job) for job in jobs]

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job to start; None when the job is not queued."""
        try:
            return self._queue.index(job_id) + 1
        except ValueError:
            return None

    def queue_depth(self) -> int:
        return len(self._queue)

    def job_json(self, job: Job, base_url: str | None = None) -> dict[str, Any]:
        video_url = poster_url = None
        if job.result is not None:
            video_url = (self.hooks.video_url(job) if self.hooks.video_url else None) or job.result.get("url")
            poster_url = self.hooks.poster_url(job) if self.hooks.poster_url else None
        return job.to_json(self.config.public_base_url or base_url, self.queue_position(job.id), video_url,
                           poster_url)

    # --- retry-upload
    def can_retry_upload(self, job: Job) -> bool:
        return (job.status is JobStatus.FAILED and (job.error or {}).get("code") == "storage_error"
                and bool(job.unpublished) and Path(job.unpublished or "").is_file())

    async def retry_upload(self, job_id: str, owner: str | None = None) -> Job:
        """Stores a video whose upload failed again: the job runs (stage upload) and ends succeeded or failed."""
        job = self.get(job_id, owner)
        if not self.can_retry_upload(job):
            raise JobNotRetryable(f"job {job_id} is {job.status.value}"
                                  f"{' (' + job.error['code'] + ')' if job.error else ''}: only a job that failed "
                                  "with storage_error and still has its rendered video can retry the upload")
        if self._closing:
            raise ShuttingDown("the service is shutting down; retry on another instance")
        job.status, job.error, job.finished_at = JobStatus.RUNNING, None, None
        job.progress = {**empty_progress(), "stage": "upload", "percent": stage_percent("upload", 0, 1)}
        job.touch()
        self.store.save(job)
        self._jobs[job.id] = job
        log.info("job %s: retrying its upload", job.id, extra={"job_id": job.id})
        self.notify(job)
        task = asyncio.create_task(self._runner.republish(job), name=f"upload-{job.id}")
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)
        return job

    # --- cancel and delete
    async def cancel(self, job_id: str, owner: str | None = None) -> Job:
        """A queued job is canceled at once; a running one stops at its next batch boundary."""
        job = self.get(job_id, owner)
        if job.status is JobStatus.QUEUED:
            with contextlib.suppress(ValueError):
                self._queue.remove(job_id)
            self._queue_moved()
            await self.finish(job, JobStatus.CANCELED, {"code": "canceled", "message": "canceled by the client"})
        elif job.status is JobStatus.RUNNING and job_id in self._active:
            self._active[job_id].request_stop("canceled")
            log.info("job %s cancel requested", job_id, extra={"job_id": job_id})
        return job

    async def delete(self, job_id: str, owner: str | None = None) -> None:
        """Cancels the job if needed, then removes its record, inputs and video."""
        job = self.get(job_id, owner)
        if job_id in self._queue:
            self._queue.remove(job_id)
            self._queue_moved()
        if job_id in self._active:
            self._active[job_id].request_stop("deleted")
        if not job.status.is_terminal():
            job.status, job.finished_at = JobStatus.CANCELED, time.time()
            job.error = {"code": "canceled", "message": "the job was deleted"}
            self.notify(job)
        self._jobs.pop(job_id, None)
        self.store.delete(job_id)
        await asyncio.to_thread(self.remove_files, job)
        log.info("job %s deleted", job_id, extra={"job_id": job_id})

    def remove_files(self, job: Job) -> None:
        """Deletes the job's inputs, render folder (unless it is rendering) and stored video."""
        shutil.rmtree(self.input_dir(job.id), ignore_errors=True)
        if job.id not in self._active:
            shutil.rmtree(self.render_dir(job.id), ignore_errors=True)
        self.unpublished_path(job.id).unlink(missing_ok=True)
        discard = self.hooks.discard or self._discard_local
        try:
            discard(job)
        except Exception as e:  # the record is gone either way; a stray object is only logged
            log.warning("job %s: could not discard its stored video: %s", job.id, e)

    def _discard_local(self, job: Job) -> None:
        """Without a storage hook, videos live in <work dir>/videos (see JobRunner._keep_locally)."""
        if job.result and job.result.get("key"):
            path = Path(job.result["key"])
            if path.parent == self.config.work_dir / "videos":
                path.unlink(missing_ok=True)

    # --- state changes (also used by the runner)
    async def finish(self, job: Job, status: JobStatus, error: dict[str, str] | None = None) -> None:
        """Moves a job to a terminal state, persists it, frees its inputs and emits the event."""
        job.status, job.error = status, error
        job.finished_at = time.time()
        job.touch()
        self.store.save(job)
        self._jobs.pop(job.id, None)
        log.info("job %s %s%s", job.id, status.value, f" ({error['code']})" if error else "",
                 extra={"job_id": job.id})
        if self.hooks.on_finish is not None:
            self.hooks.on_finish(job)
        if not self.config.keep_inputs:  # before watchers hear of the end: a finished job holds no inputs
            await asyncio.to_thread(shutil.rmtree, self.input_dir(job.id), True)
        self.notify(job)
        await self.emit(f"job.{status.value}", job)

    def _queue_moved(self) -> None:
        """Queued jobs with watchers hear of their new position (the job records themselves did not change)."""
        for job_id in self._queue:
            if job_id in self._watchers and job_id in self._jobs:
                self.notify(self._jobs[job_id])

    def notify(self, job: Job) -> None:
        """Hands the job's current JSON to every watcher."""
        if job.id in self._watchers:
            self._watchers.publish(job.id, self.job_json(job))

    async def emit(self, event: str, job: Job) -> None:
        if self.hooks.on_event is None:
            return
        try:
            await self.hooks.on_event(event, job)
        except Exception:  # a webhook outbox failure must not change the job's outcome
            log.exception("job %s: emitting %s failed", job.id, event, extra={"job_id": job.id})

    async def watch(self, job_id: str, owner: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yields the job JSON now and on every change, ending after a terminal state."""
        job = self.get(job_id, owner)
        updates = self._watchers.follow(job_id, lambda: self.job_json(job))
        try:
            async for snapshot in updates:
                yield snapshot
        finally:
            await updates.aclose()

    # --- workers and retention
    async def _next_job(self) -> Job | None:
        async with self._wakeup:
            await self._wakeup.wait_for(lambda: self._queue or self._closing)
            if self._closing:
                return None
            job = self._jobs[self._queue.popleft()]
        self._queue_moved()
        return job

    async def _worker_loop(self, worker: Worker) -> None:
        await worker.loaded.wait()
        while worker.state != "ready":  # checkpoints added later (a volume filled after start) are picked up
            unavailable = (worker.error or {}).get("code") == "models_unavailable"
            if not unavailable or self.config.model_reload_s <= 0 or self._closing:
                return
            await asyncio.sleep(self.config.model_reload_s)
            await self.pool.reload(worker)
        while (job := await self._next_job()) is not None:
            worker.job_id = job.id
            try:
                await self._runner.run(worker, job)
            except Exception:  # the loop must survive anything one job does
                log.exception("job %s: unexpected error in the worker loop", job.id, extra={"job_id": job.id})
            finally:
                worker.job_id = None

    def track(self, job: Job, run: ActiveRun | None) -> None:
        if run is None:
            self._active.pop(job.id, None)
        else:
            self._active[job.id] = run

    async def purge_expired(self) -> int:
        """Removes finished jobs older than the retention period with their files; returns how many."""
        cutoff = time.time() - self.config.retention_s
        expired = self.store.finished_before(cutoff)
        for job in expired:
            self.store.delete(job.id)
            await asyncio.to_thread(self.remove_files, job)
        self.store.forget_keys_before(time.time() - self.config.idempotency_ttl_s)
        if expired:
            log.info("retention: removed %d job(s) finished before the last %.1f h", len(expired),
                     self.config.retention_s / 3600)
        return len(expired)

    async def _retention_loop(self) -> None:
        interval_s = min(3600.0, max(1.0, self.config.retention_s / 10))
        while True:
            try:
                await self.purge_expired()
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(interval_s)
