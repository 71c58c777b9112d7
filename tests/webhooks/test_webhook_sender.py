"""WebhookSender against a real receiver on loopback: signatures, retries, 410, Retry-After, timeouts,
restarts, deleted jobs, re-sending, address guard, and a dead receiver that must not block close()."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from urllib.parse import urlsplit

import pytest
from webhook_receiver import JOB, Reply, wait_until

from webhooks import DeliveryNotFound, WebhookSender, verify


def statuses(sender: WebhookSender, job_id: str = "job_1") -> list[str]:
    return [d["status"] for d in sender.deliveries(job_id)]


async def test_delivers_the_signed_job_json(sender_factory, receiver_factory, secret) -> None:
    receiver = receiver_factory()
    sender = await sender_factory()
    delivery_id = await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    [request] = receiver.requests
    assert json.loads(request.body) == {**JOB, "type": "job.succeeded"}
    assert request.headers["webhook-id"] == delivery_id and request.headers["content-type"] == "application/json"
    assert verify([secret], request.headers, request.body)
    assert not verify([secret], request.headers, request.body.replace(b"succeeded", b"failed"))
    [delivery] = sender.deliveries("job_1")
    assert delivery["id"] == delivery_id and delivery["event"] == "job.succeeded" and delivery["url"] == receiver.url
    assert [a["status_code"] for a in delivery["attempts"]] == [200] and delivery["next_attempt_at"] is None
    assert delivery["attempts"][0]["at"].endswith("Z")


async def test_retries_after_500s_with_a_stable_id(sender_factory, receiver_factory, secret) -> None:
    receiver = receiver_factory(Reply(500), Reply(502), Reply(200))
    sender = await sender_factory()
    await sender.enqueue("job_1", receiver.url, "job.failed", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1 and len(receiver.requests) == 3
    assert all(verify([secret], r.headers, r.body) for r in receiver.requests)
    assert [a["status_code"] for a in sender.deliveries("job_1")[0]["attempts"]] == [500, 502, 200]


async def test_gives_up_when_the_schedule_is_exhausted(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory(Reply(500))
    sender = await sender_factory(schedule_s=(0.05, 0.05))
    await sender.enqueue("job_1", receiver.url, "job.failed", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 3


async def test_retries_after_a_timeout(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory(Reply(200, delay_s=1.5), Reply(200))
    sender = await sender_factory(timeout_s=0.3)
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    first, second = sender.deliveries("job_1")[0]["attempts"]
    assert first["status_code"] is None and first["error"].startswith("timeout")
    assert second["status_code"] == 200


async def test_stops_on_410_gone(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory(Reply(410), Reply(200))
    sender = await sender_factory()
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1
    assert sender.deliveries("job_1")[0]["attempts"][0]["status_code"] == 410


async def test_honours_retry_after(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory(Reply(503, {"Retry-After": "1"}), Reply(200))
    sender = await sender_factory()
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    first, second = receiver.requests
    assert second.at - first.at >= 0.95


async def test_redirects_are_not_followed(sender_factory, receiver_factory) -> None:
    target = receiver_factory()
    receiver = receiver_factory(Reply(302, {"Location": target.url}))
    sender = await sender_factory(schedule_s=())
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    assert target.requests == [] and len(receiver.requests) == 1
    assert "redirect not followed" in sender.deliveries("job_1")[0]["attempts"][0]["error"]


async def test_url_guard_refusal_fails_without_a_request(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory()

    def refuse(url: str) -> None:
        raise ValueError(f"{url} resolves to a loopback address")

    sender = await sender_factory(url_check=refuse)
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    assert receiver.requests == []
    assert sender.deliveries("job_1")[0]["attempts"][0]["error"].startswith("url_not_allowed: ")


async def test_pending_deliveries_resume_after_a_restart(sender_factory, receiver_factory, db_path) -> None:
    receiver = receiver_factory(Reply(500), Reply(200))
    first = await sender_factory(schedule_s=(0.5,))
    delivery_id = await first.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: len(receiver.requests) == 1)
    await first.close()
    await asyncio.sleep(0.7)
    assert len(receiver.requests) == 1  # nobody sends while the service is down
    second = await sender_factory(schedule_s=(0.5,))
    await wait_until(lambda: statuses(second) == ["delivered"])
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery_id, delivery_id]


async def test_dead_receiver_does_not_block_close_and_is_resent_after(sender_factory, receiver_factory) -> None:
    dead = receiver_factory(Reply(200, delay_s=30))
    sender = await sender_factory(timeout_s=10.0)
    await sender.enqueue("job_1", dead.url, "job.succeeded", JOB)
    await wait_until(lambda: len(dead.requests) == 1)
    started = time.monotonic()
    await sender.close()
    assert time.monotonic() - started < 2.5
    dead.replies = [Reply(200)]
    again = await sender_factory()
    await wait_until(lambda: statuses(again) == ["delivered"])
    assert len({r.headers["webhook-id"] for r in dead.requests}) == 1


async def test_dead_receiver_does_not_delay_other_deliveries(sender_factory, receiver_factory) -> None:
    dead, alive = receiver_factory(Reply(200, delay_s=30)), receiver_factory()
    sender = await sender_factory(timeout_s=10.0)
    await sender.enqueue("job_1", dead.url, "job.started", JOB)
    await wait_until(lambda: len(dead.requests) == 1)
    await sender.enqueue("job_2", alive.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender, "job_2") == ["delivered"], timeout_s=2.0)


async def test_dropped_job_gets_no_more_deliveries(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory(Reply(500), Reply(200))
    sender = await sender_factory(schedule_s=(0.3,))
    await sender.enqueue("job_1", receiver.url, "job.started", JOB)
    await wait_until(lambda: len(receiver.requests) == 1)
    sender.drop_job("job_1")
    assert sender.deliveries("job_1") == []
    await sender.enqueue("job_1", receiver.url, "job.canceled", JOB)
    await asyncio.sleep(0.6)
    assert len(receiver.requests) == 1 and sender.deliveries("job_1") == []


async def test_drop_job_before_the_first_attempt(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory()
    sender = await sender_factory()
    sender.drop_job("job_9")
    await sender.enqueue("job_9", receiver.url, "job.started", JOB)
    await asyncio.sleep(0.3)
    assert receiver.requests == [] and sender.deliveries("job_9") == []


async def test_redeliver_sends_again_with_the_same_id(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory()
    sender = await sender_factory(schedule_s=())
    delivery_id = await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    await sender.redeliver(delivery_id)
    await wait_until(lambda: len(receiver.requests) == 2)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery_id] * 2
    assert len(sender.deliveries("job_1")[0]["attempts"]) == 2
    with pytest.raises(DeliveryNotFound):
        await sender.redeliver("msg_unknown")
    with pytest.raises(DeliveryNotFound):
        await sender.redeliver(delivery_id, job_id="job_someone_else")
    await sender.redeliver(delivery_id, job_id="job_1")
    await wait_until(lambda: len(receiver.requests) == 3)


async def test_redeliver_revives_a_failed_delivery(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory(Reply(500), Reply(200))
    sender = await sender_factory(schedule_s=())
    delivery_id = await sender.enqueue("job_1", receiver.url, "job.failed", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    await sender.redeliver(delivery_id)
    await wait_until(lambda: statuses(sender) == ["delivered"])


async def test_progress_is_coalesced_and_superseded(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory()
    sender = await sender_factory(progress_interval_s=0.5)
    for percent in (10.0, 20.0, 30.0):
        await sender.enqueue("job_1", receiver.url, "job.progress", {**JOB, "progress": {"percent": percent}})
    await wait_until(lambda: statuses(sender).count("pending") == 0, timeout_s=3)
    progress = [json.loads(r.body)["progress"]["percent"] for r in receiver.requests]
    assert 1 <= len(progress) <= 2 and progress[-1] == 30.0
    sent_at = [r.at for r in receiver.requests]
    assert all(b - a >= 0.45 for a, b in zip(sent_at, sent_at[1:], strict=False))  # throttled to one per interval
    await sender.enqueue("job_1", receiver.url, "job.progress", {**JOB, "progress": {"percent": 40.0}})
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await wait_until(lambda: "job.succeeded" in [json.loads(r.body)["type"] for r in receiver.requests])
    await asyncio.sleep(0.6)
    assert 40.0 not in [json.loads(r.body)["progress"]["percent"] for r in receiver.requests if b"progress" in r.body]
    assert statuses(sender)[-2:] == ["superseded", "delivered"]


async def test_unknown_events_are_refused(sender_factory, receiver_factory) -> None:
    sender = await sender_factory()
    with pytest.raises(ValueError, match="job.succeeded"):
        await sender.enqueue("job_1", receiver_factory().url, "job.exploded", JOB)


async def test_without_httpx_webhooks_are_skipped_with_a_warning(sender_factory, receiver_factory, monkeypatch,
                                                                 caplog) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    receiver = receiver_factory()
    sender = await sender_factory()
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    await asyncio.sleep(0.2)
    assert statuses(sender) == ["skipped"] and receiver.requests == []
    assert "httpx is not installed" in caplog.text


async def test_unsigned_without_secrets(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory()
    sender = await sender_factory(secrets=[])
    await sender.enqueue("job_1", receiver.url, "job.started", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    assert "webhook-signature" not in receiver.requests[0].headers


async def test_outbox_shares_the_job_database(sender_factory, receiver_factory, db_path) -> None:
    jobs = sqlite3.connect(db_path)
    jobs.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, body TEXT)")
    jobs.commit()
    receiver = receiver_factory()
    sender = await sender_factory()
    await sender.enqueue("job_1", receiver.url, "job.succeeded", JOB)
    jobs.execute("INSERT INTO jobs VALUES ('job_1', '{}')")
    jobs.commit()
    await wait_until(lambda: statuses(sender) == ["delivered"])
    tables = {r[0] for r in jobs.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"jobs", "webhook_deliveries", "webhook_attempts"} <= tables
    assert jobs.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    jobs.close()


@pytest.mark.parametrize("url", ["http://", "ftp://127.0.0.1/x", "http://exa\x00mple/"])
async def test_malformed_urls_fail_without_retries(sender_factory, url) -> None:
    sender = await sender_factory(schedule_s=(0.05, 0.05))
    await sender.enqueue("job_1", url, "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    [attempt] = sender.deliveries("job_1")[0]["attempts"]
    assert attempt["error"].startswith("invalid URL: ") and attempt["status_code"] is None


async def test_enqueue_after_close_is_refused_clearly(sender_factory, receiver_factory) -> None:
    sender = await sender_factory()
    await sender.close()
    await sender.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await sender.enqueue("job_1", receiver_factory().url, "job.started", JOB)


async def test_events_recorded_before_start_go_out_once_started(db_path, secret, receiver_factory) -> None:
    receiver = receiver_factory()
    sender = WebhookSender(db_path, [secret], schedule_s=(0.05,))
    try:
        await sender.enqueue("job_1", receiver.url, "job.started", JOB)
        await asyncio.sleep(0.1)
        assert receiver.requests == []
        await sender.start()
        await wait_until(lambda: statuses(sender) == ["delivered"])
    finally:
        await sender.close()


def test_outbox_forgets_old_tombstones(db_path) -> None:
    from webhooks.outbox import TOMBSTONE_TTL_S, Outbox

    outbox = Outbox(db_path)
    try:
        outbox.drop_job("job_old", now=1000.0)
        outbox.drop_job("job_new", now=1000.0 + TOMBSTONE_TTL_S + 1)
    finally:
        outbox.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT job_id FROM webhook_dropped_jobs").fetchall() == [("job_new",)]


async def test_addresses_are_checked_again_when_connecting(sender_factory, receiver_factory) -> None:
    """A name that passes the URL check but resolves to a refused address (DNS rebinding) is not reached."""
    receiver = receiver_factory()
    checked: list[str] = []

    def refuse_loopback_literals(url: str) -> None:  # the name "localhost" passes, its addresses do not
        checked.append(url)
        if urlsplit(url).hostname in ("127.0.0.1", "::1"):
            raise ValueError("a loopback address")

    sender = await sender_factory(url_check=refuse_loopback_literals)
    port = urlsplit(receiver.url).port
    await sender.enqueue("job_1", f"http://localhost:{port}/hooks", "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["failed"])
    assert receiver.requests == []
    [attempt] = sender.deliveries("job_1")[0]["attempts"]
    assert attempt["error"].startswith("url_not_allowed: localhost resolves to ")
    assert checked[0] == f"http://localhost:{port}/hooks" and any("127.0.0.1" in url for url in checked[1:])


async def test_checked_addresses_are_the_ones_connected_to(sender_factory, receiver_factory) -> None:
    receiver = receiver_factory()
    checked: list[str] = []
    sender = await sender_factory(url_check=checked.append)
    port = urlsplit(receiver.url).port
    await sender.enqueue("job_1", f"http://localhost:{port}/hooks", "job.succeeded", JOB)
    await wait_until(lambda: statuses(sender) == ["delivered"])
    assert f"http://127.0.0.1:{port}/" in checked and len(receiver.requests) == 1
