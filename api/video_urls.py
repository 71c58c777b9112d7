"""Video URLs made when a job is read, not only at upload time: presigned URLs expire.

`storage.url(key)` is computed locally for S3 but is a network call for Supabase, so each URL is cached for
about half its lifetime and re-made (off the event loop) when a job is read after that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from jobs import Job, JobStatus

log = logging.getLogger(__name__)
MAX_ENTRIES = 10_000


class VideoUrls:
    def __init__(self, storage: Any, url_expiry_s: float):
        self.storage = storage
        self.fresh_s = url_expiry_s / 2  # a cached URL handed out stays valid for at least this long
        self._cache: dict[str, tuple[str | None, float]] = {}  # key -> (url, made at, monotonic)

    @staticmethod
    def _key(job: Job) -> str | None:
        if job.status is not JobStatus.SUCCEEDED or not job.result:
            return None
        return job.result.get("key")

    def current(self, job: Job) -> str | None:
        """The cached URL of a succeeded job's video; None when none is cached (the stored one is used)."""
        key = self._key(job)
        entry = self._cache.get(key) if key else None
        return entry[0] if entry else None

    async def refresh(self, *jobs: Job) -> None:
        """Re-makes the URLs of the given jobs whose cached URL is missing or past half its lifetime."""
        now = time.monotonic()
        stale = {key for job in jobs if (key := self._key(job))
                 and (key not in self._cache or now - self._cache[key][1] > self.fresh_s)}
        await asyncio.gather(*(self._make(key) for key in stale))

    async def _make(self, key: str) -> None:
        try:
            url = await asyncio.to_thread(self.storage.url, key)
        except Exception as e:  # the stored URL is answered instead; the next read tries again
            log.warning("could not make a URL for %s: %s", key, e)
            return
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.clear()
        self._cache[key] = (url, time.monotonic())
