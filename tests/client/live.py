"""The real app under uvicorn on a loopback port, in a background thread of the test process.

Streaming responses (Server-Sent Events) need a real server: httpx's ASGI transport hands a body over only when
it is complete. Running in-process keeps the scripted fake renderer steerable (`factory.hold`, `script`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import uvicorn
from starlette.types import ASGIApp

from api_app import create_app
from settings import Settings
from tests.support.app import free_port
from tests.support.fake_renderer import FakeFactory

START_TIMEOUT_S = 30.0


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, *, on_exit: Callable[[], None] | None = None) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) of `app` under uvicorn (lifespan run); stops it after."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, "the server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        if on_exit is not None:
            on_exit()
        server.should_exit = True
        thread.join(START_TIMEOUT_S)


@contextlib.contextmanager
def live_server(settings: Settings, factory: FakeFactory, *, wait_ready: bool = True) -> Iterator[str]:
    """The service with the scripted fake renderer; a held renderer is released on exit (else shutdown waits)."""
    app = create_app(settings, renderer_factory=factory)
    with serve_in_thread(app, on_exit=factory.hold.set) as url:
        if wait_ready:
            _wait(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, "the server is not ready")
        yield url


def _wait(done: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.02)
