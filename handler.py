"""RunPod serverless worker: `python handler.py` on RunPod, `python handler.py --rp_serve_api` for the SDK's
local API (`/run`, `/runsync`, `/status/{id}`).

A job is {"input": {"image": URL or data: URI, "audio": URL or data: URI, <job options>}}; the output is
{"video_url", "storage", "bytes", "duration_s", "frames", "width", "height", "face_detector", "seed"}, or
{"error": "<JSON {code, message}>"} for a refused input or a failed render (docs/serverless.md). The model loads
once per worker (its loading starts with the worker) and renders in a thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import runpod

from serving.delivery import UPLOADING_PROVIDERS, deliver
from serving.inputs import check_media, fetch_media, input_limits, split_input
from serving.model import ModelRunner, error_of, progress_update, result_facts
from settings import Settings

log = logging.getLogger("handler")
PROGRESS_STEP_PERCENT = 5.0  # progress updates are sent on a new stage or after this much progress

SETTINGS = Settings()
RUNNER = ModelRunner.from_settings(SETTINGS)
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
_storage: Any = None


def _upload_storage() -> Any:
    """The configured S3 or Supabase backend (built once), or None when videos are returned inline."""
    global _storage
    if _storage is None and SETTINGS.storage_provider in UPLOADING_PROVIDERS:
        from storage import create_storage

        _storage = create_storage(SETTINGS.storage_provider, SETTINGS.storage_options(),
                                  local_root=SETTINGS.sadtalker_output_dir)
    return _storage


class _ProgressSender:
    """Pipeline callbacks (model thread) -> runpod.serverless.progress_update, on a new stage or every few %."""

    def __init__(self, job: dict[str, Any]):
        self.job, self.stage, self.percent = job, None, -PROGRESS_STEP_PERCENT

    def __call__(self, stage: str, done: int, total: int) -> None:
        update = progress_update(stage, done, total)
        percent = update["percent"] or 0.0
        if stage != self.stage or percent - self.percent >= PROGRESS_STEP_PERCENT:
            self.stage, self.percent = stage, percent
            runpod.serverless.progress_update(self.job, update)


async def generate(job: dict[str, Any]) -> dict[str, Any]:
    """One job: fetch and check the inputs, render on the warm model, store or inline the video."""
    sources, options = split_input(job.get("input"))
    limits, job_id = input_limits(SETTINGS), str(job.get("id") or "job")
    with tempfile.TemporaryDirectory(prefix="sadtalker-runpod-") as tmp:
        async with httpx.AsyncClient(timeout=limits.fetch_timeout_s) as client:
            files = await fetch_media(client, sources, Path(tmp), limits)
        await check_media(files, limits, FFMPEG)
        report = _ProgressSender(job)
        result = await asyncio.wrap_future(
            RUNNER.render(files, options, Path(tmp) / "output.mp4", progress=report, job_id=job_id))
        storage = _upload_storage()
        if storage is not None:
            report("upload", 0, 1)
        delivered = await asyncio.to_thread(deliver, result.video_path, job_id, storage,
                                            inline_max_bytes=SETTINGS.sadtalker_inline_video_max_bytes,
                                            retry_delays_s=SETTINGS.upload_retry_delays)
    return {**result_facts(result, delivered["bytes"]), **delivered}


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """The RunPod handler: the output, or {"error": JSON text of {code, message}} (the SDK's error shape)."""
    try:
        return await generate(job)
    except Exception as e:
        error = error_of(e)
        if error["code"] == "render_failed":
            log.exception("job %s failed", job.get("id"))
        else:
            log.warning("job %s refused: %s: %s", job.get("id"), error["code"], error["message"])
        return {"error": json.dumps(error)}


if __name__ == "__main__":
    logging.basicConfig(level=SETTINGS.api_log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    RUNNER.load()  # the model loads while the worker starts; the first job waits for it
    runpod.serverless.start({"handler": handler})
