"""Video and poster URLs made when a job is read, not only at upload time: presigned URLs expire.

Local files get a path signed with an expiring token (`api.links`), so a browser, a `<video>` tag or the
platform loads them without the API key. Cloud stores: `storage.url(key)` is computed locally for S3 but is
a network call for Supabase, so each URL is cached for about half its lifetime and re-made (off the event
loop) when a job is read after that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from jobs import Job, JobStatus

from .links import LinkSigner

log = logging.getLogger(__name__)
MAX_ENTRIES = 10_000
KEY_FIELDS = {"video": "key", "poster": "poster_key"}  # kind -> field of job.result holding its storage key


class VideoUrls:
    def __init__(self, storage: Any, url_expiry_s: float, signer: LinkSigner):
        self.storage = storage
        self.signer = signer
        self.local = getattr(storage, "name", "local") == "local"
        self.fresh_s = url_expiry_s / 2  # a cached URL handed out stays valid for at least this long
        self._cache: dict[str, tuple[str | None, float]] = {}  # key -> (url, made at, monotonic)

    @staticmethod
    def _key(job: Job, kind: str = "video") -> str | None:
        if job.status is not JobStatus.SUCCEEDED or not job.result:
            return None
        return job.result.get(KEY_FIELDS[kind])

    def current(self, job: Job) -> str | None:
        """The URL of a succeeded job's video: a signed path for a local file, else the cached store URL;
        None when none is cached (the one stored at upload is used)."""
        return self._url(job, "video")

    def poster(self, job: Job) -> str | None:
        """The same for the job's poster image."""
        return self._url(job, "poster")

    def _url(self, job: Job, kind: str) -> str | None:
        key = self._key(job, kind)
        if not key:
            return None
        if self.local:
            return self.signer.sign(f"/v1/jobs/{job.id}/{kind}")
        entry = self._cache.get(key)
        return entry[0] if entry else None

    async def refresh(self, *jobs: Job) -> None:
        """Re-makes the store URLs of the given jobs whose cached URL is missing or past half its lifetime."""
        if self.local:
            return
        now = time.monotonic()
        keys = {key for job in jobs for kind in KEY_FIELDS if (key := self._key(job, kind))}
        stale = {key for key in keys if key not in self._cache or now - self._cache[key][1] > self.fresh_s}
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
