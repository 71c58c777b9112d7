"""Webhooks through the real API: a job's events reach a loopback receiver signed with WEBHOOK_SECRET and carry
the job JSON; failures are reported; a deleted job sends nothing; a dead receiver blocks neither jobs nor
shutdown; deliveries pending at shutdown go out after a restart (on the schedule of
SADTALKER_WEBHOOK_SCHEDULE_S); the deliveries endpoints list and re-send them."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from webhook_receiver import Reply, wait_until

from tests.support.app import KEY_B, make_settings, running_app, wait_status
from tests.support.fake_renderer import FakeFactory, Script
from webhooks import generate_secret, verify


def _files(face_png: Path, speech_wav: Path) -> dict:
    return {"image": ("portrait.png", face_png.read_bytes(), "image/png"),
            "audio": ("speech.wav", speech_wav.read_bytes(), "audio/wav")}


async def _submit(client, face_png: Path, speech_wav: Path, **fields: str) -> dict:
    response = await client.post("/v1/jobs", files=_files(face_png, speech_wav), data=fields)
    assert response.status_code == 202, response.text
    return response.json()


def _events(receiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests]


async def test_job_events_are_signed_job_json(tmp_path, receiver_factory, face_png, speech_wav):
    secret, receiver = generate_secret(), receiver_factory()
    settings = make_settings(tmp_path / "out", webhook_secret=secret)
    async with running_app(settings, FakeFactory()) as (app, client):
        job = await _submit(client, face_png, speech_wav, webhook_url=receiver.url)
        done = await wait_status(client, job["id"], ("succeeded", "failed"))
        await wait_until(lambda: len(receiver.requests) == 2)
        assert sorted(event["type"] for event in _events(receiver)) == ["job.started", "job.succeeded"]
        for request in receiver.requests:
            assert verify([secret], request.headers, request.body)
            assert not verify([generate_secret()], request.headers, request.body)
        succeeded = next(event for event in _events(receiver) if event["type"] == "job.succeeded")
        assert succeeded["id"] == job["id"] and succeeded["status"] == "succeeded"
        assert succeeded["result"] == done["result"] and succeeded["webhook_url"] == receiver.url
        sender = app.state.services.webhooks
        await wait_until(lambda: [d["status"] for d in sender.deliveries(job["id"])] == ["delivered"] * 2)


async def test_failed_job_reports_its_error(tmp_path, receiver_factory, face_png, speech_wav):
    receiver = receiver_factory()
    settings = make_settings(tmp_path / "out", webhook_secret=generate_secret())
    async with running_app(settings, FakeFactory(Script(fail_code="render_failed"))) as (_, client):
        job = await _submit(client, face_png, speech_wav, webhook_url=receiver.url)
        await wait_status(client, job["id"], ("failed",))
        await wait_until(lambda: any(e["type"] == "job.failed" for e in _events(receiver)))
        failed = next(e for e in _events(receiver) if e["type"] == "job.failed")
        assert failed["status"] == "failed" and failed["error"]["code"] == "render_failed"


async def test_job_deleted_before_it_ran_sends_nothing(tmp_path, receiver_factory, face_png, speech_wav):
    receiver, factory = receiver_factory(), FakeFactory(Script(frames=20))
    settings = make_settings(tmp_path / "out", webhook_secret=generate_secret(), sadtalker_workers=1)
    async with running_app(settings, factory) as (_, client):
        factory.hold.clear()  # the only worker stops at its first batch boundary
        first = await _submit(client, face_png, speech_wav)
        await asyncio.to_thread(factory.wait_started, first["id"])
        queued = await _submit(client, face_png, speech_wav, webhook_url=receiver.url)
        assert queued["status"] == "queued"
        assert (await client.delete(f"/v1/jobs/{queued['id']}")).status_code == 204
        factory.hold.set()
        await wait_status(client, first["id"], ("succeeded",))
        await asyncio.sleep(0.3)
        assert receiver.requests == []


async def test_dead_receiver_blocks_neither_jobs_nor_shutdown(tmp_path, receiver_factory, face_png, speech_wav):
    dead = receiver_factory(Reply(200, delay_s=30))
    settings = make_settings(tmp_path / "out", webhook_secret=generate_secret())
    async with running_app(settings, FakeFactory()) as (_, client):
        job = await _submit(client, face_png, speech_wav, webhook_url=dead.url)
        done = await wait_status(client, job["id"], ("succeeded", "failed"), timeout_s=10)
        assert done["status"] == "succeeded"
        await wait_until(lambda: len(dead.requests) >= 1)
        leaving = time.monotonic()
    assert time.monotonic() - leaving < 5.0


async def test_pending_deliveries_go_out_after_a_restart(tmp_path, receiver_factory, face_png, speech_wav):
    receiver = receiver_factory(Reply(503))
    settings = make_settings(tmp_path / "out", webhook_secret=generate_secret(), sadtalker_webhook_schedule_s="1,60")
    async with running_app(settings, FakeFactory()) as (_, client):
        job = await _submit(client, face_png, speech_wav, webhook_url=receiver.url,
                            webhook_events="job.succeeded")
        await wait_status(client, job["id"], ("succeeded",))
        await wait_until(lambda: len(receiver.requests) == 1)
    receiver.replies = [Reply(200)]
    async with running_app(settings, FakeFactory()) as (app, client):
        await wait_until(lambda: len(receiver.requests) == 2, timeout_s=5)  # first retry after ~1 s
        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        await wait_until(lambda: app.state.services.webhooks.deliveries(job["id"])[0]["status"] == "delivered")


async def test_deliveries_are_listed_and_redelivered_through_the_api(tmp_path, receiver_factory, face_png,
                                                                    speech_wav):
    secret, receiver = generate_secret(), receiver_factory()
    settings = make_settings(tmp_path / "out", webhook_secret=secret, sadtalker_webhook_timeout_s=2)
    async with running_app(settings, FakeFactory()) as (_, client):
        job = await _submit(client, face_png, speech_wav, webhook_url=receiver.url, webhook_events="job.succeeded")
        await wait_status(client, job["id"], ("succeeded",))
        await wait_until(lambda: len(receiver.requests) == 1)
        path = f"/v1/jobs/{job['id']}/deliveries"
        listed = await client.get(path)
        assert listed.status_code == 200 and listed.json()["object"] == "list"
        [delivery] = listed.json()["data"]
        assert delivery["event"] == "job.succeeded" and delivery["url"] == receiver.url
        assert delivery["status"] == "delivered" and delivery["attempts"][0]["status_code"] == 200
        again = await client.post(f"{path}/{delivery['id']}/redeliver")
        assert again.status_code == 202
        await wait_until(lambda: len(receiver.requests) == 2)
        first, second = receiver.requests
        assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery["id"]
        assert verify([secret], second.headers, second.body)
        unknown = await client.post(f"{path}/msg_{'0' * 32}/redeliver")
        other_key = await client.get(path, headers={"X-API-Key": KEY_B})
        other_job = await _submit(client, face_png, speech_wav)
        wrong_job = await client.post(f"/v1/jobs/{other_job['id']}/deliveries/{delivery['id']}/redeliver")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert other_key.status_code == 404 and wrong_job.status_code == 404
