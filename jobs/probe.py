"""Can jobs be stored right now? A cheap, cached check of the work folder and the job database.

Submissions ask it before reading a request body and /readyz reports it, so a full or read-only disk answers
503 `storage_unavailable` at once instead of failing half-way through an upload or a state save.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from .store import JobStore
from .workdir import WorkDir

PROBE_TTL_S = 2.0  # a probe's answer is reused this long (each probe writes one small file and one row)


class StorageProbe:
    def __init__(self, workdir: WorkDir, store: JobStore, min_free_bytes: int, ttl_s: float = PROBE_TTL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.workdir, self.store, self.min_free_bytes = workdir, store, min_free_bytes
        self.ttl_s, self.clock = ttl_s, clock
        self._last: tuple[float, str | None] | None = None  # (clock time, problem or None)

    def problem(self) -> str | None:
        """None when jobs can be stored, else why not (probed at most once per ttl)."""
        if self._last is None or self.clock() - self._last[0] > self.ttl_s:
            self._last = (self.clock(), self._probe())
        return self._last[1]

    def report(self, problem: str) -> None:
        """A write failed elsewhere: unavailable at once, until a probe after the ttl succeeds."""
        self._last = (self.clock(), problem)

    def _probe(self) -> str | None:
        for what, folder in (("output folder", self.workdir.root), ("job database folder", self.store.path.parent)):
            try:
                free = shutil.disk_usage(folder).free
            except OSError as e:
                return f"the {what} {folder} cannot be read: {e}"
            if free < self.min_free_bytes:
                return (f"the {what} {folder} has {free // 2**20} MiB free, under the "
                        f"{self.min_free_bytes // 2**20} MiB a job needs (SADTALKER_MIN_FREE_MB)")
        try:
            self.workdir.probe()
        except OSError as e:
            return f"the output folder {self.workdir.root} cannot be written: {e}"
        try:
            self.store.probe()
        except sqlite3.Error as e:
            return f"the job database {Path(self.store.path)} cannot be written: {e}"
        return None
