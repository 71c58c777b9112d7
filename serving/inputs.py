"""Serverless inputs: the job options, media given as http(s) URLs or `data:` URIs, and the content checks.

Every problem is an `ApiError` with the API's codes (validation_error, unknown_field, url_not_allowed,
fetch_failed, payload_too_large, invalid_image, invalid_audio, ...), so a caller sees the same codes whichever
way it reaches the model.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
from pydantic import ValidationError

import urlguard
from api.errors import ApiError
from api.inputs import InputLimits, JobOptions
from api.media import check_audio, check_image, check_video

MEDIA_NAMES = ("image", "audio", "ref_eyeblink", "ref_pose")
REQUIRED_MEDIA = ("image", "audio")
OPTION_NAMES = tuple(JobOptions.model_fields)
INPUT_NAMES = (*MEDIA_NAMES, *OPTION_NAMES)


def input_limits(settings: Any) -> InputLimits:
    """The API's input limits from the one `Settings` object."""
    return InputLimits(
        max_image_bytes=settings.sadtalker_max_image_bytes, max_audio_bytes=settings.sadtalker_max_audio_bytes,
        max_video_bytes=settings.sadtalker_max_video_bytes,
        max_audio_seconds=settings.sadtalker_max_audio_seconds,
        max_image_pixels=settings.sadtalker_max_image_pixels, fetch_timeout_s=settings.sadtalker_fetch_timeout_s,
        allow_private_urls=settings.sadtalker_allow_private_urls)


def check_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The job options, validated and completed with their defaults by the API's `JobOptions` model."""
    try:
        return JobOptions.model_validate(dict(values)).model_dump()
    except ValidationError as e:
        unknown = [str(err["loc"][0]) for err in e.errors() if err["type"] == "extra_forbidden"]
        if unknown:
            raise ApiError("unknown_field", f"unknown input(s): {', '.join(unknown)} "
                           f"(accepted: {', '.join(INPUT_NAMES)})") from e
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ApiError("validation_error", problems) from e


def split_input(raw: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """A serverless `input` object -> (media sources by name, validated options)."""
    if not isinstance(raw, Mapping):
        raise ApiError("validation_error", "input must be a JSON object with image, audio and the job options")
    sources: dict[str, str] = {}
    for name in MEDIA_NAMES:
        value = raw.get(name)
        if value is None:
            if name in REQUIRED_MEDIA:
                raise ApiError("validation_error", f"{name} is required (an http(s) URL or a data: URI)")
            continue
        if not isinstance(value, str) or not value.strip():
            raise ApiError("validation_error", f"{name} must be an http(s) URL or a data: URI")
        sources[name] = value.strip()
    options = check_options({k: v for k, v in raw.items() if k not in MEDIA_NAMES})
    return sources, options


def decode_data_uri(uri: str, dest: Path, max_bytes: int, name: str) -> int:
    """Writes the bytes of a `data:[<type>][;base64],<data>` URI to `dest`; returns their count."""
    header, sep, payload = uri[len("data:"):].partition(",")
    if not sep:
        raise ApiError("validation_error", f"{name}: a data: URI needs a comma before its data")
    is_base64 = header.split(";")[-1].strip().lower() == "base64"
    estimate = len(payload) * 3 // 4 if is_base64 else len(payload)
    if estimate > max_bytes + 3:  # before decoding: a huge URI costs no memory twice
        raise ApiError("payload_too_large", f"{name} is about {estimate} bytes, more than the limit of {max_bytes}")
    try:
        data = base64.b64decode(payload, validate=True) if is_base64 else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as e:
        raise ApiError("validation_error", f"{name}: the data: URI is not valid base64: {e}") from e
    if len(data) > max_bytes:
        raise ApiError("payload_too_large", f"{name} is {len(data)} bytes, more than the limit of {max_bytes}")
    if not data:
        raise ApiError("validation_error", f"{name}: the data: URI holds no bytes")
    dest.write_bytes(data)
    return len(data)


async def fetch_media(client: httpx.AsyncClient, sources: Mapping[str, str], dest_dir: Path,
                      limits: InputLimits) -> dict[str, Path]:
    """Each source (data: URI, or http(s) URL fetched with the API's guards and caps) -> a file in `dest_dir`."""
    files: dict[str, Path] = {}
    for name, source in sources.items():
        dest = dest_dir / f"{name}.input"
        if source[:5].lower() == "data:":
            decode_data_uri(source, dest, limits.bytes_for(name), name)
        else:
            try:
                await urlguard.fetch_to_file(client, source, dest, max_bytes=limits.bytes_for(name),
                                             timeout_s=limits.fetch_timeout_s,
                                             allow_private=limits.allow_private_urls)
            except (urlguard.BlockedURL, urlguard.FetchFailed) as e:
                raise ApiError(e.code, f"{name}: {e}") from e
        files[name] = dest
    return files


async def check_media(files: Mapping[str, Path], limits: InputLimits, ffmpeg: str) -> None:
    """The API's size limits and content checks: the image decodes (pixel limit), the audio decodes and fits the
    duration limit, reference videos decode. The face itself is checked by the render."""
    for name, path in files.items():
        size, limit = Path(path).stat().st_size, limits.bytes_for(name)
        if size > limit:
            raise ApiError("payload_too_large", f"{name} is {size} bytes, more than the limit of {limit}")
    await asyncio.to_thread(check_image, files["image"], limits.max_image_pixels)
    await check_audio(ffmpeg, files["audio"], limits.max_audio_seconds)
    for name in ("ref_eyeblink", "ref_pose"):
        if name in files:
            await check_video(ffmpeg, files[name], name)
