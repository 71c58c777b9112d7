"""Helpers of the serverless entry-point tests: data: URIs, probing an MP4, and the child processes (Cog's
HTTP server, the RunPod SDK's local API) run with the project's settings."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import imageio_ffmpeg

from tests.support.app import ROOT

VENV_BIN = str(Path(sys.executable).parent)


def data_uri(path: Path, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def probe(video: bytes, tmp_path: Path) -> str:
    """ffmpeg's description of an MP4 (imageio-ffmpeg's binary)."""
    path = tmp_path / "probe.mp4"
    path.write_bytes(video)
    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr


def decode_data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header == "data:video/mp4;base64", header
    return base64.b64decode(payload)


def serving_env(checkpoints: Path, **extra: str) -> dict[str, str]:
    """The environment of a serving process: the venv's bin first on PATH (coglet spawns `python` from PATH),
    stand-in checkpoints on the CPU, no enhancer, loopback URLs allowed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SADTALKER_", "STORAGE_"))}
    env.update({"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
                "SADTALKER_CHECKPOINT_DIR": str(checkpoints), "SADTALKER_DEVICE": "cpu",
                "SADTALKER_ENHANCER": "false", "SADTALKER_ALLOW_PRIVATE_URLS": "true"})
    env.update(extra)
    return env


@contextlib.contextmanager
def child_process(args: list[str], env: dict[str, str], ready: Callable[[], bool], log_path: Path,
                  timeout_s: float = 120.0) -> Iterator[subprocess.Popen]:
    """Starts `args` in the project root, waits until `ready()`, and stops it (SIGTERM, then SIGKILL) after."""
    with log_path.open("wb") as log:
        # a session of its own: Cog's server spawns a worker process, and the whole group is stopped after
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while not _ready(ready):
                if proc.poll() is not None:
                    raise RuntimeError(f"{args} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args} not ready after {timeout_s} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield proc
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _ready(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except httpx.HTTPError:
        return False
