"""Who is watching which job: each `JobManager.watch()` consumer holds the latest job JSON.

Updates coalesce (a consumer sees the newest state, not every intermediate one), so a slow reader never piles
up memory and never slows the job down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

TERMINAL = ("succeeded", "failed", "canceled")


class _Watcher:
    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.changed = asyncio.Event()


class Watchers:
    def __init__(self) -> None:
        self._by_job: dict[str, set[_Watcher]] = {}

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_job

    def publish(self, job_id: str, snapshot: dict[str, Any]) -> None:
        """Hands `snapshot` (the job JSON) to every watcher of the job."""
        for watcher in self._by_job.get(job_id, ()):
            watcher.latest = snapshot
            watcher.changed.set()

    async def follow(self, job_id: str, current: Callable[[], dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """Yields `current()` (taken once registered, so no change is missed), then every published snapshot,
        ending after a terminal status."""
        watcher = _Watcher()
        self._by_job.setdefault(job_id, set()).add(watcher)
        try:
            snapshot = current()
            yield snapshot
            while snapshot["status"] not in TERMINAL:
                await watcher.changed.wait()
                watcher.changed.clear()
                if watcher.latest is not None:
                    snapshot = watcher.latest
                    yield snapshot
        finally:
            watchers = self._by_job.get(job_id, set())
            watchers.discard(watcher)
            if not watchers:
                self._by_job.pop(job_id, None)
