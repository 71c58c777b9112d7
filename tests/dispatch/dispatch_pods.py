"""Real service instances as pods for the dispatcher tests: uvicorn subprocesses on loopback ports."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

POD_KEY = "pod-key-test"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Pod:
    """A real service instance (uvicorn subprocess) on a loopback port."""

    url: str
    proc: subprocess.Popen
    output_dir: Path

    def kill(self) -> None:
        """SIGKILL: the pod dies as a lost GPU node does, mid-request."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def jobs(self, status: str | None = None) -> list[dict]:
        params = {"status": status} if status else {}
        resp = httpx.get(f"{self.url}/v1/jobs", params=params, headers={"X-API-Key": POD_KEY}, timeout=5)
        resp.raise_for_status()
        return resp.json()["data"]


def launch_pod(workdir: Path, render_s: float = 0.3) -> Pod:
    """Start `uvicorn --factory dispatch_pod_app:create` as run.sh would, and wait until /readyz says ready."""
    port = free_port()
    output = workdir / f"pod-{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
           "API_KEYS": POD_KEY, "SADTALKER_OUTPUT_DIR": str(output), "SADTALKER_CHECKPOINT_DIR": str(output / "ck"),
           "SADTALKER_DEVICE": "cpu", "SADTALKER_WORKERS": "1", "API_LOG_LEVEL": "WARNING",
           "DISPATCH_TEST_RENDER_S": str(render_s)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "dispatch_pod_app:create", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    pod = Pod(f"http://127.0.0.1:{port}", proc, output)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pod on port {port} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{pod.url}/readyz", timeout=1).status_code == 200:
                return pod
        time.sleep(0.1)
    pod.kill()
    raise RuntimeError(f"pod on port {port} not ready within 60 s")


@contextlib.contextmanager
def running_pods(workdir: Path, count: int, render_s: float) -> Iterator[list[Pod]]:
    pods: list[Pod] = []
    try:
        for _ in range(count):
            pods.append(launch_pod(workdir, render_s))
        yield pods
    finally:
        for pod in pods:
            if pod.proc.poll() is None:
                pod.proc.terminate()
                try:
                    pod.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pod.kill()


def endpoints_of(pods: list[Pod]) -> str:
    """SADTALKER_RUNPOD_ENDPOINTS for the pods (url|token|apiKey; loopback pods need no RunPod token)."""
    return ",".join(f"{pod.url}||{POD_KEY}" for pod in pods)


@dataclass
class RedisServer:
    """A redis-server of the test's own on a free port (the shared one on 6379 is never disturbed)."""

    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
