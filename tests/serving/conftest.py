"""Fixtures of the serverless entry-point tests: stand-in checkpoints and a very short speech clip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest


@pytest.fixture(scope="session")
def serving_checkpoints(tmp_path_factory, reference_dir) -> Path:
    """Narrow stand-in checkpoints in the official file formats (no face-model files: the dlib fallback)."""
    from sadtalker.standin import write_standins

    return write_standins(tmp_path_factory.mktemp("serving_standins"), reference_dir, small=True)


@pytest.fixture(scope="session")
def tiny_speech_wav(media_dir, speech_wav) -> Path:
    """The first 0.2 s of the real speech: 5 video frames, enough to render and keep the tests short."""
    path = media_dir / "speech_tiny.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(speech_wav), "-t", "0.2",
                    str(path)], check=True)
    return path
