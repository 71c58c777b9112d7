"""The poster image stored beside every video: its middle frame as a JPEG, made with ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

POSTER_QUALITY = 3  # ffmpeg's -q:v for MJPEG: 2 (best) .. 31
POSTER_TIMEOUT_S = 60


class PosterError(Exception):
    code = "poster_failed"


def make_poster(ffmpeg: str, video: Path, out: Path) -> Path:
    """Writes the middle frame of `video` to `out` (JPEG) and returns `out`; PosterError with ffmpeg's
    message when the video has no frame to take (blocking: call it off the event loop)."""
    try:
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError) as e:
        raise PosterError(f"cannot read {video.name}: {e}") from e
    if frames < 1:
        raise PosterError(f"{video.name} has no video frame")
    command = [ffmpeg, "-v", "error", "-y", "-ss", f"{seconds / 2:.3f}", "-i", str(video), "-frames:v", "1",
               "-q:v", str(POSTER_QUALITY), "-f", "image2", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=POSTER_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PosterError(f"ffmpeg could not run: {e}") from e
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise PosterError(f"ffmpeg made no poster: {done.stderr.decode(errors='replace').strip()[-500:]}")
    return out
