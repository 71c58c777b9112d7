"""A loopback HTTP file server for URL inputs (real HTTP, optional redirects and slow bodies)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from .app import free_port


def _app(files: dict[str, Path]) -> Starlette:
    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        if name.startswith("redirect-"):
            return RedirectResponse(request.query_params["to"], status_code=302)
        if name == "slow":
            async def trickle():
                for _ in range(1000):
                    yield b"x" * 10
                    await asyncio.sleep(0.05)
            return StreamingResponse(trickle())
        if name == "endless":  # no Content-Length; never ends
            async def forever():
                while True:
                    yield b"\0" * 65536
                    await asyncio.sleep(0)
            return StreamingResponse(forever())
        if name not in files:
            return Response(status_code=404)
        return FileResponse(files[name])

    return Starlette(routes=[Route("/{name}", serve)])


@contextlib.asynccontextmanager
async def serve_files(files: dict[str, Path]) -> AsyncIterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) of a uvicorn server serving `files` by name."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(files), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
