"""The create/status API over a real Redis: auth, validation, the address guard, what lands in the queue."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from bullmq import Job, Queue

from dispatch.api import create_app

pytestmark = pytest.mark.redis

KEY = "k-test-1"


@pytest.fixture
async def api(make_settings):
    """A client of `dispatch.api` (private addresses refused, as in production)."""
    app = create_app(make_settings(allow_private_urls=False, dispatch_api_keys=KEY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatch",
                                 headers={"X-API-Key": KEY}) as client:
        yield client
    if app.state.dispatch is not None:
        await app.state.dispatch.queue.close()


BODY = {"imageUrl": "https://93.184.215.14/face.png", "audioUrl": "https://93.184.215.14/speech.wav",
        "userId": "user-7", "poseStyle": 3, "still": True, "platformRef": {"credits": 1}}


async def test_create_enqueues_the_body_with_bullmq_retries(api, redis_url, queue_name):
    resp = await api.post("/api/sadtalker/create", json=BODY)
    assert resp.status_code == 200, resp.text
    job_id = resp.json()["jobId"]
    queue = Queue(queue_name, {"connection": redis_url})
    try:
        job = await Job.fromId(queue, job_id)
        assert job.data == BODY and job.name == "generate"
        assert job.opts["attempts"] == 3 and job.opts["backoff"] == {"type": "exponential", "delay": 200}
    finally:
        await queue.close()
    status = (await api.get("/api/sadtalker/status", params={"id": job_id})).json()
    assert status["state"] == "waiting" and status["progress"] == 0
    assert status["result"] is None and status["error"] is None and status["attempts"] == 3


async def test_status_of_an_unknown_job_is_404(api):
    resp = await api.get("/api/sadtalker/status", params={"id": "nope"})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = await api.get("/api/sadtalker/status")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"


async def test_api_key_required(api):
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
        resp = await api.post("/api/sadtalker/create", json=BODY, headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    resp = await api.get("/api/sadtalker/status", params={"id": "1"}, headers={"X-API-Key": "wrong"})
    assert resp.status_code == 401


async def test_no_key_configured_refuses_everything_unless_opened(make_settings):
    closed = create_app(make_settings(allow_private_urls=False, dispatch_open=False))
    opened = create_app(make_settings(allow_private_urls=False, dispatch_open=True))
    answers = []
    for app in (closed, opened):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatch") as client:
            answers.append(await client.post("/api/sadtalker/create", json=BODY))
        if app.state.dispatch is not None:
            await app.state.dispatch.queue.close()
    refused, accepted = answers
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert "SADTALKER_DISPATCH_OPEN" in refused.json()["error"]["message"]
    assert accepted.status_code == 200, accepted.text


async def test_status_is_scoped_to_the_user_the_platform_names(api):
    job_id = (await api.post("/api/sadtalker/create", json=BODY)).json()["jobId"]
    mine = await api.get("/api/sadtalker/status", params={"id": job_id}, headers={"X-User-Id": "user-7"})
    theirs = await api.get("/api/sadtalker/status", params={"id": job_id}, headers={"X-User-Id": "user-8"})
    by_query = await api.get("/api/sadtalker/status", params={"id": job_id, "userId": "user-8"})
    unscoped = await api.get("/api/sadtalker/status", params={"id": job_id})
    assert mine.status_code == 200 and mine.json()["id"] == job_id
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert by_query.status_code == 404 and unscoped.status_code == 200


@pytest.mark.parametrize(("change", "code", "words"), [
    ({"audioUrl": None}, "validation_error", "'audioUrl' is required"),
    ({"imageUrl": "file:///etc/passwd"}, "validation_error", "http(s) URL"),
    ({"poseStyle": [1, 2]}, "validation_error", "poseStyle"),
    ({"imageUrl": "http://127.0.0.1:6379/x.png"}, "url_not_allowed", "loopback"),
    ({"audioUrl": "http://169.254.169.254/latest/meta-data"}, "url_not_allowed", "metadata"),
    ({"audioUrl": "http://10.1.2.3/a.wav"}, "url_not_allowed", "private"),
])
async def test_bad_requests_get_a_clear_422(api, change, code, words):
    resp = await api.post("/api/sadtalker/create", json={**BODY, **change})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == code and words in error["message"]


async def test_body_must_be_a_json_object(api):
    resp = await api.post("/api/sadtalker/create", json=["imageUrl"])
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"


async def test_redis_down_is_a_quick_503(make_settings):
    from dispatch_pods import free_port

    app = create_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatch") as client:
        for request in (client.post("/api/sadtalker/create", json=BODY),
                        client.get("/api/sadtalker/status", params={"id": "1"})):
            resp = await asyncio.wait_for(request, 10)
            assert resp.status_code == 503 and resp.json()["error"]["code"] == "queue_unavailable"
    await app.state.dispatch.queue.close()


async def test_routes_can_be_included_in_the_service(make_settings, tmp_path):
    from api_app import create_app as create_service_app
    from dispatch.api import include_in
    from settings import Settings

    service = create_service_app(Settings(sadtalker_output_dir=tmp_path, sadtalker_checkpoint_dir=tmp_path))
    include_in(service, make_settings(allow_private_urls=False, dispatch_api_keys=KEY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://svc",
                                 headers={"X-API-Key": KEY}) as client:
        created = await client.post("/api/sadtalker/create", json=BODY)
        status = await client.get("/api/sadtalker/status", params={"id": created.json()["jobId"]})
        refused = await client.get("/api/sadtalker/status", params={"id": "1"}, headers={"X-API-Key": "no"})
    await service.state.dispatch.queue.close()
    assert created.status_code == 200 and status.json()["state"] == "waiting"
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
