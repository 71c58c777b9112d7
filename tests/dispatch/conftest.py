"""Fixtures of the dispatcher tests: real Redis (a unique queue per test), input files over loopback HTTP,
a dispatcher factory (the arq-style worker fixture)."""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bullmq import Queue
from dispatch_pods import Pod, running_pods
from dispatch_servers import file_server

from dispatch.settings import DispatchSettings
from dispatch.worker import Dispatcher

REDIS_URL = "redis://127.0.0.1:6379"


def redis_up(host: str = "127.0.0.1", port: int = 6379) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not redis_up():
        pytest.fail("Redis is not running on 127.0.0.1:6379 (scripts/test.sh starts it)")
    return REDIS_URL


@pytest.fixture
async def queue_name(redis_url) -> AsyncIterator[str]:
    """A queue of this test's own; removed with all its keys afterwards."""
    name = f"test-dispatch-{uuid.uuid4().hex[:10]}"
    yield name
    queue = Queue(name, {"connection": redis_url})
    try:
        await queue.obliterate(force=True)
    finally:
        await queue.close()


@dataclass(frozen=True)
class Media:
    base_url: str
    image_url: str
    audio_url: str
    big_url: str  # 3 MB of zeros: over the caps the tests set
    directory: Path


@pytest.fixture(scope="module")
def media(tmp_path_factory, face_png, speech_wav) -> Iterator[Media]:
    """The real face photo and real speech, served over loopback HTTP."""
    root = tmp_path_factory.mktemp("dispatch-media")
    shutil.copy(face_png, root / "face.png")
    shutil.copy(speech_wav, root / "speech.wav")
    (root / "big.bin").write_bytes(b"\0" * 3_000_000)
    with file_server(root) as url:
        yield Media(url, f"{url}/face.png", f"{url}/speech.wav", f"{url}/big.bin", root)


@pytest.fixture
def make_settings(redis_url, queue_name):
    """Settings for a test: its queue, loopback inputs allowed, short polls, backoffs and cooldowns, the
    create/status API open without a key (test_dispatch_api checks the keyed and the closed cases)."""

    def make(**overrides) -> DispatchSettings:
        values = dict(redis_url=redis_url, queue_name=queue_name, allow_private_urls=True, dispatch_open=True,
                      poll_interval_ms=50, pod_cooldown_ms=2_000, job_backoff_ms=200, job_attempts=3,
                      lock_duration_ms=5_000, redis_retry_ms=200, drain_timeout_ms=5_000)
        values.update(overrides)
        return DispatchSettings(**values)

    return make


@pytest.fixture
async def start_dispatcher() -> AsyncIterator:
    """Starts Dispatchers (BullMQ workers) in the test's event loop; all are drained and closed afterwards."""
    started: list[Dispatcher] = []

    async def start(settings: DispatchSettings) -> Dispatcher:
        dispatcher = Dispatcher(settings)
        await dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield start
    for dispatcher in started:
        await dispatcher.close(drain_timeout_s=5)


@pytest.fixture(scope="session")
def pods(tmp_path_factory) -> Iterator[list[Pod]]:
    """Two pods shared by the tests (never killed by them)."""
    with running_pods(tmp_path_factory.mktemp("pods"), 2, render_s=0.3) as started:
        yield started


@pytest.fixture(scope="session")
def slow_pod(tmp_path_factory) -> Iterator[Pod]:
    """One pod whose renders take 2 s (progress, timeouts, take-over)."""
    with running_pods(tmp_path_factory.mktemp("slow-pod"), 1, render_s=2.0) as (pod,):
        yield pod
