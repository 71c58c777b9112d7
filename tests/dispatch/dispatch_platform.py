"""A client of the create/status API (`dispatch.api`) for the dispatcher tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable

import httpx

from dispatch.api import create_app


@contextlib.asynccontextmanager
async def platform_api(settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `dispatch.api` (create/status) on the test's queue."""
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://platform") as client:
        yield client
    if app.state.dispatch is not None:
        await app.state.dispatch.queue.close()


async def wait_finished(client: httpx.AsyncClient, job_id: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = (await client.get("/api/sadtalker/status", params={"id": job_id})).json()
        if status["state"] in ("completed", "failed"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} still {status['state']} after {timeout_s} s: {status}")


async def create(client: httpx.AsyncClient, media, **extra) -> str:
    body = {"imageUrl": media.image_url, "audioUrl": media.audio_url, "userId": "u1", **extra}
    resp = await client.post("/api/sadtalker/create", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["jobId"]


async def eventually(condition: Callable, timeout_s: float = 15, what: str = "condition") -> None:
    """Wait until `condition()` (sync or async) is truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.03)
