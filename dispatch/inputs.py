"""Download a job's image and audio with the size caps and the service's address guard (urlguard)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx

import urlguard
from dispatch import constants as c
from dispatch.payload import JobPayload
from dispatch.settings import DispatchSettings


def _name(url: str, stem: str) -> str:
    """A local file name keeping the URL's extension (pods sniff content, but names help logs)."""
    suffix = Path(urlsplit(url).path).suffix[:8]
    return stem + (suffix if suffix[1:].isalnum() else "")


async def download_inputs(client: httpx.AsyncClient, payload: JobPayload, dest: Path,
                          settings: DispatchSettings) -> tuple[Path, Path]:
    """(image path, audio path) under `dest`. Raises urlguard.BlockedURL, urlguard.TooLarge (over
    SADTALKER_MAX_IMAGE_BYTES / SADTALKER_MAX_AUDIO_BYTES) or urlguard.FetchFailed."""
    image = dest / _name(payload.image_url, "image")
    audio = dest / _name(payload.audio_url, "audio")
    await asyncio.gather(
        urlguard.fetch_to_file(client, payload.image_url, image, max_bytes=settings.max_image_bytes,
                               timeout_s=c.DOWNLOAD_TIMEOUT_S, allow_private=settings.allow_private_urls),
        urlguard.fetch_to_file(client, payload.audio_url, audio, max_bytes=settings.max_audio_bytes,
                               timeout_s=c.DOWNLOAD_TIMEOUT_S, allow_private=settings.allow_private_urls),
    )
    return image, audio
