"""Content checks on stored inputs: decode the image with Pillow and the audio/video with ffmpeg.

File names and client content types are never trusted; only what decodes counts.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .errors import ApiError

IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# ffmpeg demuxer names of the accepted audio containers (mov,mp4,m4a,... covers M4A).
AUDIO_DEMUXERS = ("wav", "mp3", "mov", "ogg", "flac", "matroska", "aac")
SAMPLE_RATE = 16000
PROBE_TIMEOUT_S = 60.0
# ffmpeg's line for the first audio stream: "Stream #0:0: Audio: pcm_s16le (...), 22050 Hz, mono, s16, ..."
STREAM_LINE = re.compile(r"Stream #\S+.*?: Audio: ([^,\n]+), (\d+) Hz, ([^,\n]+)")
CHANNEL_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.1": 6, "5.1(side)": 6, "7.1": 8}


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class AudioInfo:
    container: str
    duration_s: float
    codec: str | None = None
    sample_rate: int | None = None  # Hz, of the file (decoding resamples to 16 kHz)
    channels: int | None = None


def audio_stream(stderr: str) -> dict[str, Any]:
    """Codec, sample rate and channel count of the first audio stream, from ffmpeg's input description."""
    match = STREAM_LINE.search(stderr)
    if match is None:
        return {}
    layout = match.group(3).strip()
    channels = CHANNEL_LAYOUTS.get(layout) or (int(layout.split()[0]) if layout[:1].isdigit() else None)
    codec = match.group(1).split(" (")[0].strip()  # "pcm_s16le ([1][0][0][0] / 0x0001)" -> "pcm_s16le"
    return {"codec": codec, "sample_rate": int(match.group(2)), "channels": channels}


def check_image(path: Path, max_pixels: int) -> ImageInfo:
    """Blocking. The file must be a JPEG, PNG or WebP that decodes fully and has at most `max_pixels`."""
    try:
        with Image.open(path) as img:
            fmt, (width, height) = img.format or "?", img.size
            if fmt not in IMAGE_FORMATS:
                raise ApiError("unsupported_media_type",
                               f"image is {fmt}; send a JPEG, PNG or WebP")
            if width * height > max_pixels:
                raise ApiError("invalid_image",
                               f"image is {width}x{height}, more than the limit of {max_pixels} pixels")
            img.load()  # decodes every pixel: truncated or corrupt files fail here
    except ApiError:
        raise
    except UnidentifiedImageError as e:
        raise ApiError("invalid_image", "image is not a picture that can be decoded (JPEG, PNG or WebP)") from e
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ApiError("invalid_image", f"image could not be decoded: {e}") from e
    if width < 32 or height < 32:
        raise ApiError("invalid_image", f"image is {width}x{height}; at least 32x32 pixels are needed")
    return ImageInfo(fmt, width, height)


async def _ffmpeg(ffmpeg: str, *args: str) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-nostdin", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, b"", f"ffmpeg took longer than {PROBE_TIMEOUT_S:g} s"
    return proc.returncode or 0, out, err.decode("utf-8", "replace")


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no detail from ffmpeg"


async def check_audio(ffmpeg: str, path: Path, max_seconds: float, *, field: str = "audio") -> AudioInfo:
    """The file must be WAV/MP3/M4A/OGG/FLAC, decode with ffmpeg, hold samples and last at most `max_seconds`."""
    # Decode at most a little past the limit: a very long file costs no more than an acceptable one.
    rc, pcm, err = await _ffmpeg(ffmpeg, "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1",
                                 "-ar", str(SAMPLE_RATE), "-t", f"{max_seconds + 0.5:.3f}", "-f", "s16le", "-")
    match = re.search(r"Input #0, ([\w,]+), from", err)
    container = match.group(1) if match else ""
    if match is None or rc != 0:
        raise ApiError("invalid_audio", f"{field} could not be decoded: {_last_line(err)}")
    if not any(name in container.split(",") for name in AUDIO_DEMUXERS):
        raise ApiError("unsupported_media_type", f"{field} is {container}; send WAV, MP3, M4A, OGG or FLAC")
    duration_s = len(pcm) / 2 / SAMPLE_RATE
    if duration_s <= 0.04:  # not even one video frame (25 fps)
        raise ApiError("invalid_audio", f"{field} holds no sound samples")
    if duration_s > max_seconds:
        raise ApiError("audio_too_long", f"{field} is longer than the limit of {max_seconds:g} s")
    return AudioInfo(container, duration_s, **audio_stream(err))


async def check_video(ffmpeg: str, path: Path, field: str) -> None:
    """A reference video (ref_eyeblink / ref_pose) must hold a decodable video stream."""
    rc, _, err = await _ffmpeg(ffmpeg, "-i", str(path), "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-")
    if rc != 0 or "Input #0" not in err:
        raise ApiError("invalid_video", f"{field} is not a video that can be decoded: {_last_line(err)}")
