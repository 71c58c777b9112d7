"""Job events reach the job's webhook_url, signed, with the job JSON as body (real loopback receiver)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.app import free_port, make_settings, running_app, wait_status
from webhooks import verify

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@contextlib.asynccontextmanager
async def receiver(received: list):
    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.should_exit = True
        await task


async def test_started_and_succeeded_events_are_signed(tmp_path, factory, face_jpg, short_speech_wav):
    received: list = []
    settings = make_settings(tmp_path, webhook_secret=SECRET)
    async with receiver(received) as url, running_app(settings, factory) as (_, client):
        files = {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", short_speech_wav.read_bytes())}
        job = (await client.post("/v1/jobs", files=files, data={"webhook_url": url,
                                                                "metadata": '{"order": 9}'})).json()
        assert job["webhook_url"] == url
        await wait_status(client, job["id"], ("succeeded",))
        for _ in range(200):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.05)
    events = [json.loads(body) for _, body in received]
    assert [event["type"] for event in events] == ["job.started", "job.succeeded"]
    assert all(event["id"] == job["id"] and event["metadata"] == {"order": 9} for event in events)
    assert f"/v1/jobs/{job['id']}/video?exp=" in events[1]["result"]["video_url"]
    assert all(verify([SECRET], headers, body) for headers, body in received)
