"""The real app under uvicorn on a loopback port, in a background thread of the test process.

Streaming responses (Server-Sent Events) need a real server: httpx's ASGI transport hands a body over only when
it is complete. Running in-process keeps the scripted fake renderer steerable (`factory.hold`, `script`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from api_app import create_app
from settings import Settings
from tests.support.app import free_port
from tests.support.fake_renderer import FakeFactory

START_TIMEOUT_S = 30.0


@contextlib.contextmanager
def live_server(settings: Settings, factory: FakeFactory, *, wait_ready: bool = True) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) of the app; stops it (lifespan exit) afterwards."""
    port = free_port()
    app = create_app(settings, renderer_factory=factory)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: server.started, "the server did not start")
        if wait_ready:
            _wait(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, "the server is not ready")
        yield url
    finally:
        factory.hold.set()  # a held renderer would keep shutdown waiting
        server.should_exit = True
        thread.join(START_TIMEOUT_S)


def _wait(done, message: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.02)
