"""Where a serverless worker's video goes: the configured storage (a URL), else inline as a `data:` URI."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from api.errors import ApiError
from storage import Storage, put_file_retrying

UPLOADING_PROVIDERS = ("s3", "supabase")


def storage_key(job_id: str) -> str:
    """The object key of a serverless job's video (the job id made safe for every backend)."""
    return f"serverless/{re.sub(r'[^A-Za-z0-9._-]', '-', job_id).strip('.-') or 'job'}.mp4"


def deliver(video: Path, job_id: str, storage: Storage | None, *, inline_max_bytes: int,
            retry_delays_s: tuple[float, ...] = ()) -> dict[str, Any]:
    """Blocking. {video_url, storage, bytes}: uploaded when `storage` is given (the URL it hands out), else the
    MP4 as a `data:video/mp4;base64,...` URL when it is at most `inline_max_bytes`."""
    size = Path(video).stat().st_size
    if storage is not None:
        key = storage_key(job_id)
        stored = put_file_retrying(storage, Path(video), key, "video/mp4", delays_s=retry_delays_s)
        return {"video_url": stored.url or storage.url(key), "storage": storage.name, "bytes": stored.size}
    if size > inline_max_bytes:
        raise ApiError("video_too_large",
                       f"the video is {size} bytes, over the inline limit of {inline_max_bytes} "
                       "(SADTALKER_INLINE_VIDEO_MAX_BYTES); set STORAGE_PROVIDER=s3 or supabase to upload it instead")
    encoded = base64.b64encode(Path(video).read_bytes()).decode("ascii")
    return {"video_url": f"data:video/mp4;base64,{encoded}", "storage": "inline", "bytes": size}
