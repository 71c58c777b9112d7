"""Helpers to run the real app: in-process over ASGI (lifespan entered), or uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from api_app import create_app
from settings import Settings

from .fake_renderer import FakeFactory

ROOT = Path(__file__).resolve().parents[2]
KEY_A, KEY_B = "test-key-a-0123456789", "test-key-b-9876543210"


def make_settings(output_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_keys": f"{KEY_A},{KEY_B}", "sadtalker_output_dir": output_dir, "sadtalker_device": "cpu",
        "sadtalker_allow_private_urls": True, "sadtalker_retention_hours": 0,
        "sadtalker_shutdown_grace_s": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, factory: FakeFactory, *, wait_ready: bool = True
                      ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan entered and an httpx client speaking ASGI to it (key A by default)."""
    app = create_app(settings, renderer_factory=factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     headers={"X-API-Key": KEY_A}, timeout=30) as client:
            if wait_ready:
                await wait_for(client, "/readyz", lambda r: r.status_code == 200)
            yield app, client


async def wait_for(client: httpx.AsyncClient, path: str, done, timeout_s: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(path)
        if done(response):
            return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: still {response.status_code} {response.text[:300]}")
        await asyncio.sleep(0.02)


async def wait_status(client: httpx.AsyncClient, job_id: str, statuses: tuple[str, ...],
                      timeout_s: float = 20.0) -> dict:
    response = await wait_for(client, f"/v1/jobs/{job_id}", lambda r: r.json().get("status") in statuses, timeout_s)
    return response.json()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`tests/support/serve.py` (uvicorn + the fake renderer) in a child process on a loopback port."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "SERVE_PORT": str(self.port)}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "serve.py")],
                                     env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise TimeoutError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL: the process dies mid-job, as on a crash or an evicted pod."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM: a graceful shutdown."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout_s)
