"""Saving job records when the disk may be full: a failed save is kept in memory and retried.

`RecordKeeper.save` never raises for a storage fault (sqlite "database or disk is full", a read-only
database, an OSError): it logs, tells the storage probe, remembers the job and retries it every
`retry_s` until the save goes through. Until then the in-memory record is the job's truth (the manager
answers reads from it), and a terminal state is also written into the job's outcome slot
(`WorkDir.write_slot`) so a restart applies it instead of running the job again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import asdict

from .models import Job, JobStatus
from .probe import StorageProbe
from .store import JobStore
from .workdir import WorkDir

log = logging.getLogger(__name__)
SAVE_ERRORS = (sqlite3.Error, OSError)


class RecordKeeper:
    def __init__(self, store: JobStore, workdir: WorkDir, probe: StorageProbe, retry_s: float,
                 on_saved_again: Callable[[Job], None] | None = None):
        self.store, self.workdir, self.probe, self.retry_s = store, workdir, probe, retry_s
        self.on_saved_again = on_saved_again  # a retried save went through (the manager drops a finished job)
        self.unsaved: dict[str, Job] = {}  # job id -> the record whose last save failed
        self._failed_status: dict[str, JobStatus] = {}  # the status each unsaved record had when it was logged
        self._retry_task: asyncio.Task | None = None

    def save(self, job: Job) -> bool:
        """Saves the record; False (logged, retried later) when storage refused it."""
        try:
            self.store.save(job)
        except SAVE_ERRORS as e:
            self._failed(job, e)
            return False
        self.unsaved.pop(job.id, None)
        self._failed_status.pop(job.id, None)
        if job.status.is_terminal():
            self.workdir.close_slot(job.id)
        return True

    def forget(self, job_id: str) -> None:
        """The job was deleted: its pending save must not bring it back."""
        self.unsaved.pop(job_id, None)

    def _failed(self, job: Job, error: BaseException) -> None:
        self.probe.report(f"the job database could not be written: {error}")
        known = job.id in self.unsaved and self._failed_status.get(job.id) is job.status
        self.unsaved[job.id], self._failed_status[job.id] = job, job.status
        if known:  # a retry that failed again: already logged (and recorded in the slot)
            pass
        elif job.status.is_terminal():
            outcome = {k: v for k, v in asdict(job).items()
                       if k in ("status", "finished_at", "updated_at", "error", "result", "unpublished")}
            outcome["status"] = job.status.value
            kept = self.workdir.write_slot(job.id, outcome)
            log.error("job %s: its %s state could not be saved (%s); it is kept in memory and saved again "
                      "every %g s%s", job.id, job.status.value, error, self.retry_s,
                      " (recorded in its outcome slot for a restart)" if kept else "", extra={"job_id": job.id})
        else:
            log.error("job %s: its record could not be saved (%s); retrying every %g s", job.id, error,
                      self.retry_s, extra={"job_id": job.id})
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop(), name="save-retry")

    async def _retry_loop(self) -> None:
        while self.unsaved:
            await asyncio.sleep(self.retry_s)
            for job in list(self.unsaved.values()):
                if self.save(job):
                    log.info("job %s: its record is saved again (%s)", job.id, job.status.value,
                             extra={"job_id": job.id})
                    if self.on_saved_again is not None:
                        self.on_saved_again(job)

    async def close(self) -> None:
        """Tries the pending saves once more, then stops retrying (a restart applies outcome slots)."""
        for job in list(self.unsaved.values()):
            self.save(job)
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
        if self.unsaved:
            log.error("%d job record(s) could not be saved before the stop: %s", len(self.unsaved),
                      ", ".join(self.unsaved))
