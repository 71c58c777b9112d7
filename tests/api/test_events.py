"""`GET /v1/jobs/{id}/events` over real HTTP: live progress, terminal event, Last-Event-ID resume, queue
position, heartbeats, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from api.deps import owner_id
from api.events import job_events
from sadtalker_client.sse import ServerSentEvent, SSEDecoder
from tests.client.live import live_server
from tests.support.app import KEY_A, KEY_B, running_app, wait_status
from tests.support.fake_renderer import Script

HEADERS = {"X-API-Key": KEY_A}


@pytest.fixture
def factory(factory):
    factory.script.check_faces = False  # the face check is preflight's subject; here it only costs time
    return factory


def _files(face_png, speech_wav) -> dict:
    return {"image": ("portrait.png", face_png.read_bytes(), "image/png"),
            "audio": ("speech.wav", speech_wav.read_bytes(), "audio/wav")}


async def _events(client: httpx.AsyncClient, job_id: str, last_event_id: str | None = None
                  ) -> AsyncIterator[ServerSentEvent]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        decoder = SSEDecoder()
        async for line in response.aiter_lines():
            event = decoder.feed(line)
            if event is not None:
                yield event


async def _submit(client: httpx.AsyncClient, face_png, speech_wav, **data) -> dict:
    response = await client.post("/v1/jobs", files=_files(face_png, speech_wav), data=data)
    assert response.status_code == 202, response.text
    return response.json()


async def test_progress_stream_ends_with_the_terminal_event(settings, factory, face_png, speech_wav):
    factory.script = Script(frames=40, batch_s=0.03, check_faces=False)
    with live_server(settings, factory) as url:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            job = await _submit(client, face_png, speech_wav, batch_size="4")
            events = [event async for event in _events(client, job["id"])]
            final = (await client.get(f"/v1/jobs/{job['id']}")).json()

    jobs = [json.loads(event.data) for event in events]
    ids = [int(event.id) for event in events]
    assert ids == sorted(set(ids)), "event ids strictly increase"
    assert events[-1].event == "job.succeeded" and jobs[-1]["status"] == "succeeded"
    assert all(event.event in ("job.queued", "job.progress") for event in events[:-1])
    percents = [j["progress"]["percent"] for j in jobs]
    assert percents == sorted(percents) and percents[-1] == 100.0
    rendering = [j["progress"] for j in jobs if j["progress"]["stage"] == "render"]
    assert rendering, "render progress was streamed"
    assert any(0 < p["frames_done"] < p["frames_total"] == 40 for p in rendering)
    assert all(p["eta_s"] is None for p in rendering), "a first job's later stages were never measured: no ETA"
    # the stream's last word is what GET answers
    for name in ("status", "progress", "result", "error", "finished_at"):
        assert jobs[-1][name] == final[name]


async def test_failed_job_ends_with_job_failed(settings, factory, face_png, speech_wav):
    factory.script = Script(fail_code="render_failed", check_faces=False)
    with live_server(settings, factory) as url:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            job = await _submit(client, face_png, speech_wav)
            events = [event async for event in _events(client, job["id"])]
    assert events[-1].event == "job.failed"
    assert json.loads(events[-1].data)["error"]["code"] == "render_failed"


async def test_last_event_id_resumes_after_the_seen_state(settings, factory, face_png, speech_wav):
    factory.hold.clear()  # the job waits at its first batch boundary
    with live_server(settings, factory) as url:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            job = await _submit(client, face_png, speech_wav)
            await asyncio.to_thread(factory.wait_started, job["id"])
            await asyncio.sleep(0.1)
            first = await anext(_events(client, job["id"]))  # connection closed after one event

            # nothing changed since: a resumed stream stays silent (no replay of the seen state)
            async def next_event() -> ServerSentEvent:
                return await anext(_events(client, job["id"], last_event_id=first.id))

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(next_event(), 0.5)

            resumed = asyncio.create_task(_collect(client, job["id"], first.id))
            await asyncio.sleep(0.2)
            factory.hold.set()
            events = await asyncio.wait_for(resumed, 20)
            # resuming after the terminal event still ends the stream with it
            again = [e async for e in _events(client, job["id"], last_event_id=events[-1].id)]

    assert events and all(int(e.id) > int(first.id) for e in events)
    assert events[-1].event == "job.succeeded"
    assert [e.event for e in again] == ["job.succeeded"]


async def _collect(client: httpx.AsyncClient, job_id: str, last_event_id: str) -> list[ServerSentEvent]:
    return [event async for event in _events(client, job_id, last_event_id)]


async def test_queue_position_moves_while_queued(settings, factory, face_png, speech_wav):
    factory.hold.clear()
    with live_server(settings, factory) as url:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            running = await _submit(client, face_png, speech_wav)
            await asyncio.to_thread(factory.wait_started, running["id"])
            second = await _submit(client, face_png, speech_wav)
            third = await _submit(client, face_png, speech_wav)
            stream = _events(client, third["id"])
            event = await anext(stream)
            assert event.event == "job.queued" and json.loads(event.data)["queue_position"] == 2

            await client.post(f"/v1/jobs/{second['id']}/cancel")
            event = await asyncio.wait_for(anext(stream), 5)
            assert event.event == "job.queued" and json.loads(event.data)["queue_position"] == 1
            factory.hold.set()
            rest = [e.event async for e in stream]
            await stream.aclose()
    assert rest[-1] == "job.succeeded" and "job.progress" in rest


async def test_heartbeats_keep_an_idle_stream_open(settings, factory, face_png, speech_wav):
    factory.hold.clear()
    async with running_app(settings, factory) as (app, client):
        job = await _submit(client, face_png, speech_wav)
        await asyncio.to_thread(factory.wait_started, job["id"])
        manager = app.state.services.manager
        chunks: list[bytes] = []
        stream = job_events(manager, job["id"], owner_id(KEY_A), heartbeat_s=0.05)
        async for chunk in stream:
            chunks.append(chunk)
            if chunks.count(b": ping\n\n") == 3:
                factory.hold.set()
            if chunk.startswith(b"id:") and b"event: job.succeeded" in chunk:
                break
        await stream.aclose()
        await wait_status(client, job["id"], ("succeeded",))
    assert chunks[0].startswith(b"retry: ")
    assert chunks.count(b": ping\n\n") >= 3


async def test_errors_are_json_bodies(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (_, client):
        job = await _submit(client, face_png, speech_wav)
        missing = await client.get("/v1/jobs/job_nope/events")
        other_owner = await client.get(f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": KEY_B})
        no_key = await client.get(f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": ""})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert other_owner.status_code == 404
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "unauthorized"
