"""Fixtures shared by every test folder: the reference material and real inputs (a face photo, a photo
without a face, real speech from espeak-ng in WAV/MP3/M4A)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path(os.environ.get("SADTALKER_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))
SPEECH_TEXT = "Hello there. This is a short test of the talking head service, spoken by a machine."


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`shared/reference` beside the checkout (golden cases, manifests, detweights.py)."""
    if not (REFERENCE_DIR / "sadtalker" / "detweights.py").exists():
        pytest.fail(f"reference material not found at {REFERENCE_DIR} (set SADTALKER_REFERENCE_DIR)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def face_png(media_dir) -> Path:
    """A real portrait: skimage's astronaut (512x512 RGB)."""
    import cv2
    from skimage import data

    path = media_dir / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def face_jpg(media_dir, face_png) -> Path:
    import cv2

    path = media_dir / "astronaut.jpg"
    cv2.imwrite(str(path), cv2.imread(str(face_png)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


@pytest.fixture(scope="session")
def noface_png(media_dir) -> Path:
    """A real photo without a face: skimage's coffee cup."""
    import cv2
    from skimage import data

    path = media_dir / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    return path


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def speech_wav(media_dir) -> Path:
    """About 5 s of real English speech from espeak-ng (22.05 kHz mono PCM16 WAV)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (scripts/test.sh installs it)")
    path = media_dir / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "160", "-w", str(path), SPEECH_TEXT], check=True)
    return path


@pytest.fixture(scope="session")
def short_speech_wav(media_dir, speech_wav) -> Path:
    """The first 0.6 s of the speech (15 video frames): for full-size model runs."""
    path = media_dir / "speech_short.wav"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(speech_wav), "-t", "0.6", str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def speech_mp3(media_dir, speech_wav) -> Path:
    path = media_dir / "speech.mp3"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(speech_wav), "-b:a", "64k", str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def speech_m4a(media_dir, speech_wav) -> Path:
    path = media_dir / "speech.m4a"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(speech_wav), "-c:a", "aac", str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def servers():
    """Makes `tests.support.app.ServerProcess` instances (real uvicorn processes) and kills any still running at
    teardown, also when a test fails."""
    from tests.support.app import ServerProcess

    made: list[ServerProcess] = []

    def make(env: dict[str, str]) -> ServerProcess:
        server = ServerProcess(env)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.kill()
