"""Content checks on stored inputs: decode the image with Pillow and the audio/video with ffmpeg.

File names and client content types are never trusted: the container is recognised by its first bytes
(`sadtalker.containers`; playlists and manifests never are), ffmpeg opens it as exactly that container with
only the file protocol, and only what decodes counts.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from sadtalker.containers import AUDIO_DEMUXERS, VIDEO_DEMUXERS, describe, ffmpeg_input, sniff_file

from .errors import ApiError

IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}  # Pillow's names
SAMPLE_RATE = 16000
# Silent or near-silent audio: the whole decoded signal's RMS under SILENT_RMS_DBFS, or not one sample reaching
# SILENT_PEAK_DBFS (dB relative to full scale). Speech recorded at any usable level has an RMS of -40..-10 dBFS.
SILENT_RMS_DBFS = -55.0
SILENT_PEAK_DBFS = -45.0
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
    rms_dbfs: float | None = None  # of the decoded mono 16 kHz signal
    peak_dbfs: float | None = None

    @property
    def silent(self) -> bool:
        """Silent or near-silent (see SILENT_RMS_DBFS / SILENT_PEAK_DBFS)."""
        return (self.rms_dbfs is not None and self.rms_dbfs < SILENT_RMS_DBFS) or (
            self.peak_dbfs is not None and self.peak_dbfs < SILENT_PEAK_DBFS)


def silence(info: AudioInfo) -> str:
    """The levels of a silent recording, for messages."""
    return (f"RMS {info.rms_dbfs:.0f} dBFS, peak {info.peak_dbfs:.0f} dBFS; thresholds {SILENT_RMS_DBFS:g} and "
            f"{SILENT_PEAK_DBFS:g} dBFS")


def levels_dbfs(pcm: bytes) -> tuple[float, float]:
    """(RMS, peak) of signed 16-bit little-endian samples in dB full scale (-inf for digital silence)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float64) / 32768.0
    if samples.size == 0:
        return -math.inf, -math.inf
    rms, peak = float(np.sqrt(np.mean(samples**2))), float(np.max(np.abs(samples)))
    return (20 * math.log10(rms) if rms > 0 else -math.inf), (20 * math.log10(peak) if peak > 0 else -math.inf)


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
    """Blocking. The file must be a JPEG, PNG, WebP or BMP that decodes fully and has at most `max_pixels`."""
    try:
        with Image.open(path, formats=list(IMAGE_FORMATS)) as img:  # no other Pillow plugin even looks at it
            fmt, (width, height) = img.format or "?", img.size
            if width * height > max_pixels:
                raise ApiError("invalid_image",
                               f"image is {width}x{height}, more than the limit of {max_pixels} pixels")
            img.load()  # decodes every pixel: truncated or corrupt files fail here
    except ApiError:
        raise
    except UnidentifiedImageError as e:
        raise ApiError("unsupported_media_type", "image is not a JPEG, PNG, WebP or BMP picture") from e
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


def _demuxer(path: Path, allowed: tuple[str, ...], field: str, kind: str) -> str:
    demuxer = sniff_file(path)
    if demuxer not in allowed:
        raise ApiError("unsupported_media_type", f"{field} is not {kind} in an accepted container "
                       f"({describe(allowed)}); playlists and manifests are never accepted")
    return demuxer


async def check_audio(ffmpeg: str, path: Path, max_seconds: float, *, field: str = "audio") -> AudioInfo:
    """The file must be WAV/MP3/AAC/M4A/OGG/FLAC/WebM, decode with ffmpeg, hold samples and last at most
    `max_seconds`. The answer carries its levels (`AudioInfo.silent`)."""
    demuxer = _demuxer(path, AUDIO_DEMUXERS, field, "audio")
    # Decode at most a little past the limit: a very long file costs no more than an acceptable one.
    rc, pcm, err = await _ffmpeg(ffmpeg, *ffmpeg_input(path, demuxer), "-map", "0:a:0", "-vn", "-ac", "1",
                                 "-ar", str(SAMPLE_RATE), "-t", f"{max_seconds + 0.5:.3f}", "-f", "s16le", "pipe:1")
    match = re.search(r"Input #0, ([\w,]+), from", err)
    container = match.group(1) if match else ""
    if match is None or rc != 0:
        raise ApiError("invalid_audio", f"{field} could not be decoded: {_last_line(err)}")
    duration_s = len(pcm) / 2 / SAMPLE_RATE
    if duration_s <= 0.04:  # not even one video frame (25 fps)
        raise ApiError("invalid_audio", f"{field} holds no sound samples")
    if duration_s > max_seconds:
        raise ApiError("audio_too_long", f"{field} is longer than the limit of {max_seconds:g} s")
    rms_dbfs, peak_dbfs = levels_dbfs(pcm)
    return AudioInfo(container, duration_s, **audio_stream(err), rms_dbfs=rms_dbfs, peak_dbfs=peak_dbfs)


async def check_video(ffmpeg: str, path: Path, field: str) -> None:
    """A reference video (ref_eyeblink / ref_pose) must be MP4/MOV, WebM/MKV or AVI with a decodable video
    stream."""
    demuxer = _demuxer(path, VIDEO_DEMUXERS, field, "a video")
    rc, _, err = await _ffmpeg(ffmpeg, *ffmpeg_input(path, demuxer), "-map", "0:v:0", "-frames:v", "1",
                               "-f", "null", "-")
    if rc != 0 or "Input #0" not in err:
        raise ApiError("invalid_video", f"{field} is not a video that can be decoded: {_last_line(err)}")
