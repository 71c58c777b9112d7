"""H.264 + AAC MP4 writer: frames are piped raw into ONE ffmpeg process as they are rendered (ARCHITECTURE §8.5).

The speech is muxed by the same process (resampled to 16 kHz as the reference does, cut to the video length), the
`moov` atom is moved to the front (`+faststart`) and nothing but the final MP4 is written to disk. ffmpeg is the
binary bundled with imageio-ffmpeg.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from .containers import AUDIO_DEMUXERS, ffmpeg_input, sniff_file
from .errors import EncodeError

FPS = 25
AUDIO_SAMPLE_RATE = 16000   # the reference resamples the speech to 16 kHz before muxing
X264_PRESET = "veryfast"
X264_CRF = 18

log = logging.getLogger(__name__)


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: odd sides grow by one pixel (edge replicated)."""
    return width + width % 2, height + height % 2


class VideoEncoder:
    """Streams uint8 RGB frames (n,H,W,3) into an MP4 of exactly `num_frames` frames at 25 fps.

    Use as a context manager: leaving it with an exception kills ffmpeg and removes the partial file;
    `close()` finishes the file and raises EncodeError (with ffmpeg's stderr) on failure.
    """

    def __init__(self, out_path: Path, audio_path: Path | None, width: int, height: int, num_frames: int,
                 fps: int = FPS):
        self.out_path = Path(out_path)
        self.frame_size = (width, height)
        self.width, self.height = even_size(width, height)
        self.num_frames = num_frames
        self.frames_written = 0
        self._partial = self.out_path.with_name(f".{self.out_path.name}.partial")
        cmd = self._command(audio_path, fps)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the ffmpeg process
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        log.debug("ffmpeg: %s", " ".join(cmd))
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise EncodeError(f"cannot start ffmpeg: {e}") from e

    def _command(self, audio_path: Path | None, fps: int) -> list[str]:
        duration_s = self.num_frames / fps
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
               "-framerate", str(fps), "-i", "pipe:0"]
        if audio_path is not None:  # a caller's file: its container forced, no protocol but file
            demuxer = sniff_file(audio_path)
            if demuxer not in AUDIO_DEMUXERS:
                raise EncodeError(f"{Path(audio_path).name} is not an audio container ffmpeg may open here")
            cmd += [*ffmpeg_input(audio_path, demuxer), "-map", "0:v:0", "-map", "1:a:0",
                    "-c:a", "aac", "-ar", str(AUDIO_SAMPLE_RATE)]
        cmd += ["-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(X264_CRF), "-pix_fmt", "yuv420p",
                "-t", f"{duration_s:.6f}", "-movflags", "+faststart", "-f", "mp4", str(self._partial)]
        return cmd

    def write(self, frames: np.ndarray) -> None:
        """Append frames (n,H,W,3) uint8 RGB of the size given at construction."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.frame_size[1], self.frame_size[0], 3):
            raise ValueError(f"frames {frames.shape} do not match the video size {self.frame_size}")
        pad_h, pad_w = self.height - frames.shape[1], self.width - frames.shape[2]
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
        except (BrokenPipeError, OSError) as e:
            self.abort()
            raise EncodeError(f"ffmpeg stopped reading frames: {self._stderr_text()}") from e
        self.frames_written += len(frames)

    def close(self) -> Path:
        """Finish the MP4 (ffmpeg relocates the moov atom here) and move it to `out_path`."""
        if self.frames_written != self.num_frames:
            self.abort()
            raise EncodeError(f"got {self.frames_written} frames, expected {self.num_frames}")
        with contextlib.suppress(BrokenPipeError, OSError):   # the return code below tells what happened
            self._proc.stdin.close()
        code = self._proc.wait()
        stderr = self._stderr_text()
        self._stderr.close()
        if code != 0 or not self._partial.exists():
            self._partial.unlink(missing_ok=True)
            raise EncodeError(f"ffmpeg exited with status {code}: {stderr or 'no output'}")
        os.replace(self._partial, self.out_path)
        return self.out_path

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file (idempotent)."""
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        self._proc.wait()
        self._partial.unlink(missing_ok=True)

    def _stderr_text(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()[-2000:]

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
            if not self._stderr.closed:
                self._stderr.close()


@dataclass(frozen=True)
class MediaInfo:
    """What `ffmpeg -i` says about a file: container duration and the first video/audio streams."""

    duration_s: float | None
    video_codec: str | None
    pix_fmt: str | None
    width: int | None
    height: int | None
    fps: float | None
    audio_codec: str | None
    audio_rate: int | None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+)[^,]*, (\w+)[^,]*(?:\([^)]*\))?, (\d+)x(\d+)")
_FPS = re.compile(r"Stream #\S+.*?: Video: .*?, ([\d.]+) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+).*?, (\d+) Hz")


def probe(path: Path) -> MediaInfo:
    """Parse `ffmpeg -i PATH` (no ffprobe is bundled). Raises EncodeError when ffmpeg cannot read it."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          errors="replace", check=False)
    text = proc.stderr
    if "Input #0" not in text:
        raise EncodeError(f"ffmpeg cannot read {path}: {text.strip()[-500:]}")
    dur = _DURATION.search(text)
    video, fps, audio = _VIDEO.search(text), _FPS.search(text), _AUDIO.search(text)
    return MediaInfo(
        duration_s=int(dur[1]) * 3600 + int(dur[2]) * 60 + float(dur[3]) if dur else None,
        video_codec=video[1] if video else None, pix_fmt=video[2] if video else None,
        width=int(video[3]) if video else None, height=int(video[4]) if video else None,
        fps=float(fps[1]) if fps else None,
        audio_codec=audio[1] if audio else None, audio_rate=int(audio[2]) if audio else None)


def count_frames(path: Path) -> int:
    """Number of video frames, by decoding the stream to nothing."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                          capture_output=True, text=True, errors="replace", check=False)
    found = re.findall(r"frame=\s*(\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise EncodeError(f"cannot decode the video of {path}: {proc.stderr.strip()[-500:]}")
    return int(found[-1])


def join_videos(parts: list[Path], audio_path: Path | None, out_path: Path, num_frames: int,
                fps: int = FPS) -> Path:
    """Concatenate H.264 MP4 segments of identical encoding without re-encoding (ffmpeg's concat demuxer,
    stream copy) and mux the speech as VideoEncoder does (AAC at 16 kHz, cut to the video length,
    +faststart). The partial file is removed on failure; EncodeError carries ffmpeg's stderr."""
    out_path = Path(out_path)
    partial = out_path.with_name(f".{out_path.name}.partial")
    listing = out_path.with_name(f".{out_path.name}.concat.txt")
    listing.write_text("".join(f"file '{Path(p).resolve()}'\n" for p in parts))
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
           "-f", "concat", "-safe", "0", "-i", str(listing)]
    if audio_path is not None:
        cmd += ["-i", str(audio_path), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-ar", str(AUDIO_SAMPLE_RATE)]
    cmd += ["-c:v", "copy", "-t", f"{num_frames / fps:.6f}", "-movflags", "+faststart", "-f", "mp4", str(partial)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    finally:
        listing.unlink(missing_ok=True)
    if proc.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise EncodeError(f"joining {len(parts)} segments failed (status {proc.returncode}): "
                          f"{proc.stderr.strip()[-2000:] or 'no output'}")
    os.replace(partial, out_path)
    return out_path
