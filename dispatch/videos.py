"""Videos the dispatcher itself receives (a legacy pod's MP4 answer, a serverless worker's inline video),
stored with the configured storage (`STORAGE_PROVIDER`, the service's `S3_*` / `SUPABASE_*` variables).

With local storage (STORAGE_PROVIDER unset) the file goes under SADTALKER_DISPATCH_OUTPUT_DIR and its URL is
`SADTALKER_DISPATCH_PUBLIC_BASE_URL/api/sadtalker/videos/{key}`, served by `dispatch.api` (with its API key).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import quote

from dispatch.settings import DispatchSettings

UPLOAD_RETRY_DELAYS_S = (1.0, 4.0)
VIDEO_ROUTE = "/api/sadtalker/videos"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}\.mp4$")


class VideoStoreError(RuntimeError):
    code = "storage_error"


class VideoStoreConfigError(VideoStoreError):
    """No retry can fix it: the storage is not configured for videos the dispatcher receives."""


class VideoStore:
    """Stores MP4 files; the storage backend is built on first use (boto3/supabase imported only then)."""

    def __init__(self, settings: DispatchSettings):
        self.settings = settings
        self._storage = None

    @property
    def storage(self):
        from storage import StorageError, create_storage

        if self._storage is None:
            try:
                self._storage = create_storage(self.settings.storage_provider or None,
                                               self.settings.storage_options(),
                                               local_root=self.settings.dispatch_output_dir)
            except StorageError as e:
                raise VideoStoreConfigError(f"storage is not usable: {e}") from e
        return self._storage

    def problem(self) -> str | None:
        """Why a received video could not get a URL (checked at start-up), else None."""
        if not self.settings.storage_provider and not self.settings.dispatch_public_base_url:
            return ("videos answered by legacy pods or inline by serverless workers are kept on local disk, "
                    "but SADTALKER_DISPATCH_PUBLIC_BASE_URL is unset: set it (the URL dispatch.api is reached "
                    "at) or STORAGE_PROVIDER=s3|supabase")
        return None

    async def publish(self, video: Path, job_id: str) -> dict:
        """Store `video` (then delete it) and return {"video_url", "bytes", "storage"}."""
        from storage import StorageError, put_file_retrying_async

        problem = self.problem()
        if problem:
            video.unlink(missing_ok=True)
            raise VideoStoreConfigError(problem)
        key = f"{re.sub(r'[^A-Za-z0-9_-]', '_', job_id)[:80]}-{uuid.uuid4().hex[:12]}.mp4"
        try:
            stored = await put_file_retrying_async(self.storage, video, key, "video/mp4",
                                                   delays_s=UPLOAD_RETRY_DELAYS_S)
            url = stored.url or self.storage.url(key, self.settings.storage_url_expiry_s)
        except StorageError as e:
            raise VideoStoreError(f"storing the video failed: {e}") from e
        finally:
            video.unlink(missing_ok=True)
        if not url:
            url = f"{self.settings.dispatch_public_base_url.rstrip('/')}{VIDEO_ROUTE}/{quote(key)}"
        return {"video_url": url, "bytes": stored.size, "storage": self.storage.name}

    def local_file(self, key: str) -> Path | None:
        """The file of a locally stored video, or None (unknown key, or a cloud store)."""
        if self.settings.storage_provider or not KEY_PATTERN.match(key):
            return None
        path = Path(self.settings.dispatch_output_dir) / key
        return path if path.is_file() else None
