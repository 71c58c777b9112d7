"""The job manager: one per process. Owns the queue and every job status change, durability and recovery.

Submissions are recorded in SQLite before they are acknowledged; one asyncio task per worker takes the oldest
queued job, renders it with `jobs.runner.run_render` (which returns a typed outcome and touches no record)
and applies the outcome here. Results are published and events emitted through callables that `api_app`
injects, so this package imports neither storage nor webhooks. The state rules are in docs/service.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .config import ManagerConfig, ManagerHooks, NewJob
from .durable import RecordKeeper
from .errors import (
    IdempotencyConflict,
    JobNotFound,
    JobNotRetryable,
    ModelsUnavailable,
    QueueFull,
    ShuttingDown,
    StorageUnavailable,
)
from .execution import ActiveRun, JobExecution
from .models import Failure, Job, JobStatus, Progress, new_job_id, stage_percent
from .pool import Worker, WorkerPool
from .probe import StorageProbe
from .progress import ProgressTracker, StageSpeeds
from .runner import CancelToken
from .store import JobStore
from .watchers import Watchers
from .workdir import WorkDir

log = logging.getLogger(__name__)
STORAGE_RETRY_AFTER_S = 30  # Retry-After of a submission refused because storage cannot be written

__all__ = ["ActiveRun", "JobManager", "ManagerConfig", "ManagerHooks", "NewJob"]


class JobManager(JobExecution):
    def __init__(self, store: JobStore, pool: WorkerPool, config: ManagerConfig, hooks: ManagerHooks | None = None):
        self.store, self.pool, self.config = store, pool, config
        self.hooks = hooks or ManagerHooks()
        self.workdir = WorkDir(config.work_dir)
        self.storage_probe = StorageProbe(self.workdir, store, config.min_free_bytes)
        self.records = RecordKeeper(store, self.workdir, self.storage_probe, config.save_retry_s,
                                    on_saved_again=self._saved_again)
        self.speeds = StageSpeeds()
        self._queue: deque[str] = deque()
        self._jobs: dict[str, Job] = {}  # queued, running and not-yet-saved jobs; the store has the rest
        self._active: dict[str, ActiveRun] = {}
        self._watchers = Watchers()
        self._wakeup = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []
        self._uploads: set[asyncio.Task] = set()  # retry-upload runs
        self._event_tasks: set[asyncio.Task] = set()
        self._closing = False
        self.avg_run_s = 30.0  # moving average of job run time, for Retry-After

    # --- life cycle
    async def start(self) -> None:
        """Recovers unfinished jobs, sweeps what interrupted work left, starts the worker loops (models load
        in the background) and retention."""
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        for job in self.store.unfinished():
            await self._recover(job)
        removed = self.workdir.sweep(self._inputs_in_use())
        if removed:
            log.info("recovery removed %d leftover file(s)/folder(s) of interrupted work", len(removed))
        self._tasks.append(asyncio.create_task(self.pool.start(), name="pool-start"))
        for worker in self.pool.workers:
            self._tasks.append(asyncio.create_task(self._worker_loop(worker), name=worker.name))
        if self.config.retention_s > 0:
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))

    def _inputs_in_use(self) -> set[str]:
        """Input folders recovery keeps: queued jobs', and ended jobs' when inputs are kept."""
        keep = set(self._jobs)
        if self.config.keep_inputs:
            keep |= {d.name for d in (self.config.work_dir / "inputs").glob("job_*") if self.store.get(d.name)}
        return keep

    async def _recover(self, job: Job) -> None:
        slot = self.workdir.read_slot(job.id)
        if slot is not None:  # it ended, but its final state could not be saved then: apply it, never re-run
            job.status = JobStatus(slot["status"])
            job.error = Failure(**slot["error"]) if slot.get("error") else None
            job.result, job.unpublished = slot.get("result"), slot.get("unpublished")
            job.finished_at, job.updated_at = slot.get("finished_at"), slot.get("updated_at") or time.time()
            log.warning("job %s: applying the %s state recorded while its save failed", job.id, job.status.value,
                        extra={"job_id": job.id})
            if not self.records.save(job):
                self._jobs[job.id] = job
            return
        self.workdir.close_slot(job.id)
        if job.status is JobStatus.RUNNING and job.unpublished:  # stopped during a retry-upload
            await self.finish(job, JobStatus.FAILED, self._upload_cut_short(job))
            return
        if job.status is JobStatus.RUNNING:
            if job.attempts >= self.config.max_attempts:
                message = f"the service stopped while this job was running ({job.attempts} attempts)"
                await self.finish(job, JobStatus.FAILED, Failure("interrupted", message))
                return
            log.warning("job %s was running when the service stopped; running it again (attempt %d of %d)",
                        job.id, job.attempts + 1, self.config.max_attempts, extra={"job_id": job.id})
            job.status, job.started_at, job.progress = JobStatus.QUEUED, None, Progress()
            job.touch()
            self.records.save(job)
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
            run.cancel.request_stop("shutdown")
            job = self._jobs.get(job_id)
            if job is not None and not job.status.is_terminal():
                message = f"the service shut down before the job finished (grace {self.config.shutdown_grace_s:g} s)"
                error = Failure("interrupted", message)
                if run.tracker.stage == "upload":  # rendered: the video is kept (the publish step moves it)
                    error = self._upload_cut_short(job)
                await self.finish(job, JobStatus.FAILED, error)
        tasks = [*self._tasks, *self._uploads]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.records.close()
        self.pool.close()

    @property
    def accepting(self) -> bool:
        return not self._closing

    def workers_alive(self) -> bool:
        loops = [t for t in self._tasks if t.get_name().startswith("worker-")]
        return bool(loops) and any(not t.done() for t in loops)

    # --- paths
    def input_dir(self, job_id: str) -> Path:
        return self.workdir.input_dir(job_id)

    def render_dir(self, job_id: str) -> Path:
        return self.workdir.render_dir(job_id)

    def unpublished_path(self, job_id: str) -> Path:
        return self.workdir.unpublished_path(job_id)

    def _upload_cut_short(self, job: Job) -> Failure:
        return Failure("storage_error", "the service stopped during the upload; the video is kept: "
                       f"POST /v1/jobs/{job.id}/retry-upload stores it")

    @staticmethod
    def new_id() -> str:
        return new_job_id()

    # --- submissions and queries
    def check_storage(self) -> None:
        """StorageUnavailable when the output folder or the job database cannot be written (cached probe)."""
        problem = self.storage_probe.problem()
        if problem is not None:
            raise StorageUnavailable(f"the service cannot store jobs right now: {problem}", STORAGE_RETRY_AFTER_S)

    def check_accepting(self) -> None:
        """Raises the error a submission would get right now (before any upload is read)."""
        if self._closing:
            raise ShuttingDown("the service is shutting down; retry on another instance")
        failure = self.pool.failure()
        if failure:
            raise ModelsUnavailable(failure["message"])
        self.check_storage()
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
        """Records and queues a job; returns (job, replayed). A replayed key returns the earlier job.
        Nothing is queued when the record cannot be saved (StorageUnavailable)."""
        if new.idempotency_key and new.request_hash:
            earlier = self.replay(new.owner, new.idempotency_key, new.request_hash)
            if earlier is not None:
                return earlier, True
        self.check_accepting()
        job = Job(id=new.id, owner=new.owner, options=new.options, inputs=new.inputs, metadata=new.metadata,
                  webhook_url=new.webhook_url, webhook_events=new.webhook_events, origin=new.origin)
        try:
            self.store.save(job)
            if new.idempotency_key and new.request_hash:
                self.store.remember_key(new.owner, new.idempotency_key, new.request_hash, job.id)
        except Exception as e:
            with contextlib.suppress(Exception):
                self.store.delete(job.id)
            self.storage_probe.report(f"the job database could not be written: {e}")
            raise StorageUnavailable(f"the job could not be recorded ({e}); nothing was queued",
                                     STORAGE_RETRY_AFTER_S) from e
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
        """Newest first. The live record wins over the stored one, so a job whose last save failed is listed
        under the status it has now (not the one the database still holds)."""
        before = self.get(after, owner) if after else None
        stored = self.store.list(owner, status=status, limit=limit, before=before)
        jobs = {job.id: self._jobs.get(job.id, job) for job in stored}
        jobs.update({job.id: job for job in self.records.unsaved.values() if job.owner == owner})
        order = sorted(jobs.values(), key=lambda job: (job.created_at, job.id), reverse=True)
        return [job for job in order if (status is None or job.status is status)
                and (before is None or (job.created_at, job.id) < (before.created_at, before.id))][:limit]

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
        return (job.status is JobStatus.FAILED and job.error is not None and job.error.code == "storage_error"
                and bool(job.unpublished) and Path(job.unpublished or "").is_file())

    async def retry_upload(self, job_id: str, owner: str | None = None) -> Job:
        """Stores a video whose upload failed again: the job runs (stage upload) and ends succeeded or failed."""
        job = self.get(job_id, owner)
        if not self.can_retry_upload(job):
            raise JobNotRetryable(f"job {job_id} is {job.status.value}"
                                  f"{' (' + job.error.code + ')' if job.error else ''}: only a job that failed "
                                  "with storage_error and still has its rendered video can retry the upload")
        if self._closing:
            raise ShuttingDown("the service is shutting down; retry on another instance")
        run = ActiveRun(CancelToken(), ProgressTracker(self.speeds, ("upload",)))
        job.status, job.error, job.finished_at = JobStatus.RUNNING, None, None
        job.progress = Progress(stage="upload", percent=stage_percent("upload", 0, 1))
        run.tracker.progress = job.progress
        job.touch()
        self.records.save(job)
        self._jobs[job.id] = job
        log.info("job %s: retrying its upload", job.id, extra={"job_id": job.id})
        self.notify(job)
        task = asyncio.create_task(self._republish(job, run), name=f"upload-{job.id}")
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
            await self.finish(job, JobStatus.CANCELED, Failure("canceled", "canceled by the client"))
        elif job.status is JobStatus.RUNNING and job_id in self._active:
            self._active[job_id].cancel.request_stop("canceled")
            log.info("job %s cancel requested", job_id, extra={"job_id": job_id})
        return job

    async def delete(self, job_id: str, owner: str | None = None) -> None:
        """Cancels the job if needed, then removes its record, inputs and video."""
        job = self.get(job_id, owner)
        if job_id in self._queue:
            self._queue.remove(job_id)
            self._queue_moved()
        if job_id in self._active:
            self._active[job_id].cancel.request_stop("deleted")
        if not job.status.is_terminal():
            job.status, job.finished_at = JobStatus.CANCELED, time.time()
            job.error = Failure("canceled", "the job was deleted")
            self.notify(job)
        self._jobs.pop(job_id, None)
        self.records.forget(job_id)
        self.store.delete(job_id)
        await asyncio.to_thread(self.remove_files, job)
        log.info("job %s deleted", job_id, extra={"job_id": job_id})

    def remove_files(self, job: Job) -> None:
        """Deletes the job's inputs, render folder (unless it is rendering) and stored video."""
        self.workdir.remove_job_files(job.id, rendering=job.id in self._active)
        discard = self.hooks.discard or self._discard_local
        try:
            discard(job)
        except Exception as e:  # the record is gone either way; a stray object is only logged
            log.warning("job %s: could not discard its stored video: %s", job.id, e)

    def _discard_local(self, job: Job) -> None:
        """Without a storage hook, videos live in <work dir>/videos (see WorkDir.keep_locally)."""
        if job.result and job.result.get("key"):
            path = Path(job.result["key"])
            if path.parent == self.config.work_dir / "videos":
                path.unlink(missing_ok=True)

    # --- state changes: the only place a job's status is set
    async def _start_running(self, job: Job, run: ActiveRun) -> bool:
        """queued -> running, saved with its outcome slot; False (job back at the queue's head) when storage
        cannot take it."""
        job.status, job.started_at, job.error = JobStatus.RUNNING, time.time(), None
        job.attempts += 1
        job.progress = run.tracker.progress
        job.touch()
        try:
            await asyncio.to_thread(self.workdir.open_slot, job.id)
            self.store.save(job)
        except Exception as e:
            job.status, job.started_at, job.attempts, job.progress = JobStatus.QUEUED, None, job.attempts - 1, Progress()
            self.workdir.close_slot(job.id)
            self.storage_probe.report(f"a job could not be started: {e}")
            self._queue.appendleft(job.id)
            log.error("job %s: cannot start while storage cannot be written (%s); it stays queued", job.id, e,
                      extra={"job_id": job.id})
            return False
        self._active[job.id] = run
        log.info("job %s running (attempt %d)", job.id, job.attempts, extra={"job_id": job.id})
        self.notify(job)
        await self.emit("job.started", job)
        return True

    async def finish(self, job: Job, status: JobStatus, error: Failure | None = None) -> None:
        """Moves a job to a terminal state, persists it (see RecordKeeper when that fails), frees its inputs
        and emits the event."""
        job.status, job.error = status, error
        job.finished_at = time.time()
        job.touch()
        if self.records.save(job):
            self._jobs.pop(job.id, None)
        else:
            self._jobs[job.id] = job  # reads answer from memory until the retried save goes through
        log.info("job %s %s%s", job.id, status.value, f" ({error.code})" if error else "", extra={"job_id": job.id})
        if self.hooks.on_finish is not None:
            self.hooks.on_finish(job)
        if not self.config.keep_inputs:  # before watchers hear of the end: a finished job holds no inputs
            await asyncio.to_thread(self.workdir.remove_job_inputs, job.id)
        self.notify(job)
        await self.emit(f"job.{status.value}", job)

    def _saved_again(self, job: Job) -> None:
        """A finished job whose save had failed is in the store now: reads no longer need the live record."""
        if job.status.is_terminal():
            self._jobs.pop(job.id, None)

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
                await self._run_job(worker, job)
            except Exception:  # the loop must survive anything one job does
                log.exception("job %s: unexpected error in the worker loop", job.id, extra={"job_id": job.id})
            finally:
                worker.job_id = None

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
