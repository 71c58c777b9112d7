"""The retry policy as pure functions: schedule, jitter, 410, Retry-After parsing."""

from __future__ import annotations

import random
from email.utils import formatdate

from webhooks.sender import DEFAULT_SCHEDULE_S, JITTER, Outcome, encode_body, next_state, parse_retry_after


def test_success_and_gone_are_final() -> None:
    rng = random.Random(0)
    assert next_state(Outcome(204), 1, (5,), rng) == ("delivered", None)
    assert next_state(Outcome(410), 1, (5,), rng) == ("failed", None)
    assert next_state(Outcome(error="x", permanent=True), 1, (5,), rng) == ("failed", None)


def test_delays_follow_the_schedule_with_jitter() -> None:
    rng = random.Random(1)
    for attempt, base in enumerate(DEFAULT_SCHEDULE_S, start=1):
        status, delay = next_state(Outcome(500), attempt, DEFAULT_SCHEDULE_S, rng)
        assert status == "pending" and base * (1 - JITTER) <= delay <= base * (1 + JITTER)
    assert next_state(Outcome(500), len(DEFAULT_SCHEDULE_S) + 1, DEFAULT_SCHEDULE_S, rng) == ("failed", None)
    assert sum(DEFAULT_SCHEDULE_S) > 12 * 3600  # retries span hours


def test_retry_after_extends_the_delay_but_never_shortens_it() -> None:
    rng = random.Random(2)
    assert next_state(Outcome(503, retry_after_s=100.0), 1, (5,), rng)[1] == 100.0
    assert next_state(Outcome(503, retry_after_s=0.0), 1, (5,), rng)[1] >= 4.0


def test_parse_retry_after() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert abs(parse_retry_after(formatdate(now + 60, usegmt=True), now) - 60.0) < 1.0
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now) == 0.0
    assert parse_retry_after("9999999", now) == 24 * 3600
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_body_is_the_job_json_plus_type() -> None:
    assert encode_body("job.started", {"id": "job_1", "metadata": {"name": "é"}}) == \
        '{"id":"job_1","metadata":{"name":"é"},"type":"job.started"}'.encode()
