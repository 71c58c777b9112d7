"""The Python client against the running service (uvicorn on loopback, scripted fake renderer)."""

from __future__ import annotations

import subprocess

import httpx
import imageio_ffmpeg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from sadtalker_client import (
    ApiError,
    AsyncClient,
    Client,
    ConnectionFailed,
    Job,
    JobEvent,
    JobFailed,
    WaitTimeout,
)
from tests.client.live import live_server, serve_in_thread
from tests.support.app import KEY_A, free_port, make_settings
from tests.support.fake_renderer import FakeFactory, Script


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory(Script(frames=20, batch_s=0.01, check_faces=False))


@pytest.fixture
def server(tmp_path, factory):
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        yield url


@pytest.fixture
def api(server):
    with Client(server, KEY_A) as client:
        yield client


def _is_mp4(path) -> bool:
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True)
    return "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr


def test_submit_wait_download(api, face_png, speech_wav, tmp_path):
    job = api.submit(face_png, speech_wav, still=True, preprocess="full", metadata={"user": 7}, seed=3)
    assert isinstance(job, Job) and job.status in ("queued", "running") and not job.terminal
    assert job.options["still"] is True and job.options["preprocess"] == "full" and job.metadata == {"user": 7}

    seen: list[Job] = []
    done = api.wait(job.id, on_progress=seen.append, timeout_s=30)
    assert done.status == "succeeded" and done.terminal and done.error is None
    percents = [j.progress.percent for j in seen]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert any(j.progress.stage == "render" and j.progress.frames_total == 20 for j in seen)
    assert done.result is not None and (done.result.frames, done.result.width) == (20, 256)
    assert done.finished_at is not None and done.finished_at >= done.created_at

    path = api.download(job.id, tmp_path)
    assert path == tmp_path / f"{job.id}.mp4" and path.stat().st_size == done.result.bytes
    assert _is_mp4(path)
    assert api.get(job.id) == done
    assert [j.id for j in api.list(limit=5)] == [job.id]


def test_events_are_typed_and_end_with_the_terminal_one(api, face_png, speech_wav):
    job = api.submit(face_png, speech_wav)
    events = list(api.events(job.id))
    assert all(isinstance(e, JobEvent) for e in events)
    assert events[-1].event == "job.succeeded" and events[-1].job.status == "succeeded"
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids))


def _cutting_proxy(upstream: str, seen_last_ids: list[str | None]) -> Starlette:
    """Forwards the event stream, but ends the first connection after its first event (a proxy timeout)."""

    async def events(request: Request) -> StreamingResponse:
        first = not seen_last_ids
        seen_last_ids.append(request.headers.get("last-event-id"))
        headers = {k: v for k, v in request.headers.items() if k in ("x-api-key", "last-event-id", "accept")}
        client = httpx.AsyncClient(base_url=upstream, timeout=30)
        response = await client.send(client.build_request("GET", request.url.path, headers=headers), stream=True)

        async def body():
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
                    if first and b"\nevent: " in chunk:
                        return
            finally:
                await response.aclose()
                await client.aclose()

        return StreamingResponse(body(), status_code=response.status_code, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/jobs/{job_id}/events", events)])


def test_events_reconnect_and_resume_after_a_cut(api, server, factory, face_png, speech_wav):
    factory.hold.clear()
    job = api.submit(face_png, speech_wav)
    factory.wait_started(job.id)
    seen_last_ids: list[str | None] = []
    events: list[JobEvent] = []
    with serve_in_thread(_cutting_proxy(server, seen_last_ids)) as proxy, Client(proxy, KEY_A) as via_proxy:
        for event in via_proxy.events(job.id):
            events.append(event)
            factory.hold.set()
    assert seen_last_ids == [None, events[0].id], "the second connection resumed after the first event"
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids)) and events[-1].event == "job.succeeded"


def test_api_errors_keep_the_service_code(api, server, factory, face_png, noface_png, speech_wav, tmp_path):
    with Client(server, "wrong-key") as stranger, pytest.raises(ApiError) as denied:
        stranger.get("job_x")
    assert (denied.value.code, denied.value.status) == ("unauthorized", 401)
    with pytest.raises(ApiError) as missing:
        api.get("job_missing")
    assert (missing.value.code, missing.value.status) == ("not_found", 404)
    with pytest.raises(ApiError) as bad:
        api.submit(face_png, speech_wav, size=300)
    assert bad.value.code == "validation_error" and "size" in bad.value.message
    with pytest.raises(FileNotFoundError, match="cannot read the audio file"):
        api.submit(face_png, tmp_path / "missing.wav")

    factory.hold.clear()
    job = api.submit(face_png, speech_wav)
    with pytest.raises(ApiError) as early:
        api.download(job.id, tmp_path / "early.mp4")
    assert early.value.code == "job_not_finished" and not (tmp_path / "early.mp4.part").exists()
    with pytest.raises(WaitTimeout):
        api.wait(job.id, timeout_s=0.3)
    canceled = api.cancel(job.id)
    assert canceled.status in ("running", "canceled")
    final = api.wait(job.id, timeout_s=20)
    assert final.status == "canceled" and final.error is not None
    with pytest.raises(JobFailed) as failed:
        final.raise_for_error()
    assert failed.value.code == final.error.code and failed.value.job == final


def test_no_face_is_refused_at_submit(tmp_path, face_png, noface_png, speech_wav):
    with live_server(make_settings(tmp_path / "out"), FakeFactory()) as url, Client(url, KEY_A) as api:
        report = api.preflight(noface_png, speech_wav)
        with pytest.raises(ApiError) as refused:
            api.submit(noface_png, speech_wav)
    assert not report.ok and report.errors[0].code == "no_face_detected" and report.errors[0].suggestion
    assert report.audio is not None and report.audio["sample_rate"] == 22050
    assert (refused.value.code, refused.value.status) == ("no_face_detected", 422)


def test_unreachable_service():
    with Client(f"http://127.0.0.1:{free_port()}", KEY_A) as api, pytest.raises(ConnectionFailed) as failed:
        api.get("job_x")
    assert failed.value.code == "connection_failed" and "cannot reach the service" in str(failed.value)


async def test_async_client(server, face_png, speech_wav, tmp_path):
    async with AsyncClient(server, KEY_A) as api:
        job = await api.submit(face_png, speech_wav, pose_style=5)
        stages: list[str | None] = []
        done = await api.wait(job.id, on_progress=lambda j: stages.append(j.progress.stage), timeout_s=30)
        path = await api.download(job.id, tmp_path / "async.mp4")
        listed = await api.list()
        with pytest.raises(ApiError) as missing:
            await api.cancel("job_missing")
    assert done.status == "succeeded" and done.options["pose_style"] == 5 and "render" in stages
    assert path.stat().st_size == done.result.bytes and [j.id for j in listed] == [job.id]
    assert missing.value.code == "not_found"


def test_events_give_up_on_a_stream_that_keeps_ending(monkeypatch):
    connections: list[str | None] = []

    async def ends_at_once(request: Request) -> StreamingResponse:
        connections.append(request.headers.get("last-event-id"))

        async def body():
            yield b"retry: 1000\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    monkeypatch.setattr("sadtalker_client.wire.RECONNECT_DELAYS_S", (0.01, 0.01, 0.01))
    app = Starlette(routes=[Route("/v1/jobs/{job_id}/events", ends_at_once)])
    with serve_in_thread(app) as url, Client(url, KEY_A) as api, pytest.raises(ConnectionFailed) as failed:
        list(api.events("job_x"))
    assert len(connections) == 4 and "keeps ending" in str(failed.value)
