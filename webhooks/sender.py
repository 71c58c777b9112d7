"""WebhookSender: durable, signed, retried delivery of job events from an asyncio background task.

Each event is written to the outbox before `enqueue` returns; a background task sends due deliveries
concurrently (a dead receiver occupies one slot, never the job pipeline), retries failures on a jittered
exponential schedule over hours, stops on 410 Gone, honours Retry-After, and resumes after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from .outbox import DELIVERED, FAILED, PENDING, SKIPPED, Delivery, Outbox
from .signing import secret_key, sign_all

logger = logging.getLogger(__name__)

EVENTS = ("job.started", "job.succeeded", "job.failed", "job.canceled", "job.progress")
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})
# Delay before retry n (seconds): 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h; about 16 h in all,
# long enough to ride out a receiver's deploy or a night-long outage. Each delay gets +-20 % jitter so a
# receiver coming back is not hit by every pending delivery in the same second.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
JITTER = 0.2
MAX_RETRY_AFTER_S = 24 * 3600.0
PROGRESS_INTERVAL_S = 5.0  # at most one job.progress delivery per job per interval
PROGRESS_RETRIES = 2  # progress is soon stale: a short retry budget
IDLE_POLL_S = 60.0
DB_RETRY_S = 2.0
USER_AGENT = "sadtalker-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """One HTTP attempt: a status code, or the transport/guard error that prevented one."""

    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    permanent: bool = False  # e.g. the URL is refused by the address guard


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), clamped to [0, 24 h]."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def next_state(outcome: Outcome, attempts_done: int, schedule_s: Sequence[float],
               rng: random.Random) -> tuple[str, float | None]:
    """(status, delay before the next attempt) after `attempts_done` attempts ending with `outcome`."""
    if outcome.status_code is not None and 200 <= outcome.status_code < 300:
        return DELIVERED, None
    if outcome.permanent or outcome.status_code == 410 or attempts_done > len(schedule_s):
        return FAILED, None
    delay = schedule_s[attempts_done - 1] * (1 + rng.uniform(-JITTER, JITTER))
    if outcome.retry_after_s is not None:
        delay = max(delay, outcome.retry_after_s)
    return PENDING, delay


def encode_body(event: str, payload: dict[str, Any]) -> bytes:
    """The job JSON plus `"type": event`, compact UTF-8."""
    return json.dumps({**payload, "type": event}, separators=(",", ":"), ensure_ascii=False).encode()


class DeliveryNotFound(KeyError):
    code = "not_found"


class WebhookSender:
    """Sends job events to per-job URLs; see the module docstring. All public methods are safe to call from
    the event loop; `deliveries` and `drop_job` are blocking SQLite calls of a few milliseconds."""

    def __init__(self, db_path: Path, secrets: Sequence[str], *, schedule_s: Sequence[float] = DEFAULT_SCHEDULE_S,
                 timeout_s: float = 10.0, url_check: Callable[[str], None] | None = None,
                 max_concurrency: int = 8, progress_interval_s: float = PROGRESS_INTERVAL_S,
                 rng: random.Random | None = None) -> None:
        self._secrets = [s.strip() for s in secrets if s.strip()]
        for secret in self._secrets:
            secret_key(secret)  # fail at start-up, not on the first delivery
        if not self._secrets:
            logger.warning("no WEBHOOK_SECRET set: webhooks are sent without a webhook-signature header")
        self._schedule = tuple(float(s) for s in schedule_s)
        self._timeout_s = timeout_s
        self._url_check = url_check
        self._max_concurrency = max_concurrency
        self._progress_interval_s = progress_interval_s
        self._rng = rng or random.Random()
        self._outbox = Outbox(db_path)
        self._client: Any = None  # httpx.AsyncClient once started; None when httpx is missing
        self._runner: asyncio.Task | None = None
        self._inflight: dict[str, asyncio.Task] = {}  # delivery id -> attempt task
        self._wake = asyncio.Event()
        self._disabled_reason: str | None = None
        self._closed = False
        # job id -> when its latest progress delivery falls due (in memory: progress is ephemeral)
        self._progress_due: dict[str, float] = {}
        self._progress_lock = threading.Lock()  # enqueues run in worker threads

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery stays reserved: longer than one whole attempt."""
        return self._timeout_s * 2 + 30

    async def start(self) -> None:
        try:
            import httpx
        except ImportError:
            self._disabled_reason = "httpx is not installed: webhooks are skipped (pip install httpx)"
            logger.warning(self._disabled_reason)
            return
        from .guard import guarded_transport

        limits = httpx.Limits(max_connections=self._max_concurrency, max_keepalive_connections=4)
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, headers={"user-agent": USER_AGENT},
            timeout=httpx.Timeout(self._timeout_s, connect=min(5.0, self._timeout_s)), limits=limits,
            transport=guarded_transport(self._url_check, limits) if self._url_check is not None else None,
        )
        self._runner = asyncio.create_task(self._run(), name="webhook-sender")

    async def close(self) -> None:
        """Stop sending; attempts in flight are abandoned and stay pending for the next start. Idempotent."""
        if self._closed:
            return
        self._closed = True
        abandoned = list(self._inflight)  # read first: done callbacks empty the dict as tasks end
        tasks = [t for t in (self._runner, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._runner = None
        self._inflight.clear()
        if abandoned:
            await asyncio.to_thread(self._outbox.release, abandoned)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), 2.0)
            self._client = None
        self._outbox.close()

    async def enqueue(self, job_id: str, url: str, event: str, payload: dict) -> str:
        """Record `event` for `url` durably and wake the sender; returns the delivery (webhook-id) id."""
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}: valid events are {', '.join(EVENTS)}")
        return await asyncio.to_thread(self._enqueue_blocking, job_id, url, event, encode_body(event, payload))

    def _enqueue_blocking(self, job_id: str, url: str, event: str, body: bytes) -> str:
        if self._closed:
            raise RuntimeError(f"the webhook sender is closed: {event} for job {job_id} not recorded")
        now = time.time()
        delivery_id = f"msg_{uuid.uuid4().hex}"
        status, due = PENDING, now
        with self._progress_lock:
            if self._disabled_reason is not None:
                status, due = SKIPPED, None
            elif event == "job.progress":
                coalesced = self._coalesce_progress(job_id, body)
                if coalesced is not None:
                    return coalesced
                last_due = self._progress_due.get(job_id)
                due = now if last_due is None else max(now, last_due + self._progress_interval_s)
                self._progress_due[job_id] = due
            elif event in TERMINAL_EVENTS:
                self._outbox.supersede(job_id, "job.progress")
                self._progress_due.pop(job_id, None)
            added = self._outbox.add(Delivery(delivery_id, job_id, event, url, body, status, 0, due), now)
        if added:
            self._wake_soon()
        else:
            logger.info("webhook %s for deleted job %s not sent", event, job_id)
        return delivery_id

    def _coalesce_progress(self, job_id: str, body: bytes) -> str | None:
        """Fold a progress event into the job's waiting one, so progress never piles up."""
        waiting = self._outbox.pending_unattempted(job_id, "job.progress")
        if waiting is not None and self._outbox.replace_body(waiting.id, body):
            return waiting.id
        return None

    def _wake_soon(self) -> None:
        loop = getattr(self._runner, "get_loop", lambda: None)()
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def deliveries(self, job_id: str) -> list[dict]:
        """[{id, event, url, status, created_at, attempts: [{at, status_code, error, duration_ms}],
        next_attempt_at}], oldest first; status: pending | delivered | failed | skipped | superseded."""
        return self._outbox.list_for_job(job_id)

    async def redeliver(self, delivery_id: str, *, job_id: str | None = None) -> None:
        """Send a delivery again (same webhook-id) with a fresh retry budget. DeliveryNotFound if unknown, or
        if `job_id` is given and the delivery is not that job's (so an API can scope it to the caller's job)."""
        if job_id is not None and await asyncio.to_thread(self._outbox.job_of, delivery_id) != job_id:
            raise DeliveryNotFound(delivery_id)
        if not await asyncio.to_thread(self._outbox.resend, delivery_id, time.time()):
            raise DeliveryNotFound(delivery_id)
        self._wake.set()

    def drop_job(self, job_id: str) -> None:
        """Discard a deleted job's deliveries (pending and past) and refuse its later events."""
        with self._progress_lock:
            self._progress_due.pop(job_id, None)
        for delivery_id in self._outbox.drop_job(job_id, time.time()):
            task = self._inflight.get(delivery_id)
            if task is not None:  # callable from a worker thread too: cancel on the task's own loop
                task.get_loop().call_soon_threadsafe(task.cancel)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait_s = await self._dispatch_due()
            except (sqlite3.Error, OSError) as e:  # e.g. the database locked for too long: try again soon
                logger.warning("webhook outbox unavailable, retrying in %.0fs: %s", DB_RETRY_S, e)
                wait_s = DB_RETRY_S
            except Exception:  # the sender must outlive any one failure, or webhooks stop silently
                logger.exception("webhook sender loop failed; going on in %.0fs", DB_RETRY_S)
                wait_s = DB_RETRY_S
            if wait_s > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)

    async def _dispatch_due(self) -> float:
        """Start attempts for due deliveries while slots are free; returns how long to sleep (seconds)."""
        free = self._max_concurrency - len(self._inflight)
        for delivery in await asyncio.to_thread(self._outbox.claim_due, time.time(), free, self.lease_s):
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.id}")
            self._inflight[delivery.id] = task
            task.add_done_callback(lambda _t, d=delivery.id: self._attempt_done(d))
        if free <= 0:
            return IDLE_POLL_S  # an attempt ending wakes the loop
        due = await asyncio.to_thread(self._outbox.next_due_at)
        return IDLE_POLL_S if due is None else min(IDLE_POLL_S, max(0.0, due - time.time()))

    def _attempt_done(self, delivery_id: str) -> None:
        self._inflight.pop(delivery_id, None)
        self._wake.set()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._deliver_once(delivery)
        except (sqlite3.Error, OSError) as e:  # the lease runs out and the delivery is tried again
            logger.warning("webhook %s: could not record the attempt: %s", delivery.id, e)
        except Exception:  # same: logged here, retried when the lease runs out
            logger.exception("webhook %s: attempt failed unexpectedly", delivery.id)

    async def _deliver_once(self, delivery: Delivery) -> None:
        started = time.time()
        outcome = await self._attempt(delivery)
        done = delivery.attempt_count + 1
        schedule = self._schedule[:PROGRESS_RETRIES] if delivery.event == "job.progress" else self._schedule
        status, delay = next_state(outcome, done, schedule, self._rng)
        duration_ms = int((time.time() - started) * 1000)
        next_at = None if delay is None else time.time() + delay
        recorded = await asyncio.to_thread(
            self._outbox.record_attempt, delivery.id, at=started, status_code=outcome.status_code,
            error=outcome.error, duration_ms=duration_ms, status=status, next_attempt_at=next_at)
        if recorded and status != DELIVERED:
            logger.info("webhook %s %s to %s: %s (attempt %d) -> %s%s", delivery.id, delivery.event,
                        delivery.url, outcome.error or outcome.status_code, done, status,
                        f", retry in {delay:.1f}s" if delay is not None else "")

    async def _attempt(self, delivery: Delivery) -> Outcome:
        if self._url_check is not None:
            try:
                await asyncio.to_thread(self._url_check, delivery.url)
            except ValueError as e:  # the address guard refuses it: retrying cannot help
                return Outcome(error=f"url_not_allowed: {e}", permanent=True)
            except Exception as e:  # e.g. DNS failing now: retry on schedule
                return Outcome(error=f"{type(e).__name__}: {e}")
        timestamp = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": delivery.id,
                   "webhook-timestamp": str(timestamp)}
        if self._secrets:
            headers["webhook-signature"] = sign_all(self._secrets, delivery.id, timestamp, delivery.body)
        return await self._post(delivery.url, headers, delivery.body)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        import httpx

        from .guard import AddressRefused

        try:
            # The overall deadline also bounds a receiver that drips its response headers.
            return await asyncio.wait_for(self._send(url, headers, body), self._timeout_s + 5.0)
        except AddressRefused as e:  # the name resolved to a refused address when connecting
            return Outcome(error=f"url_not_allowed: {e}", permanent=True)
        except asyncio.TimeoutError:
            return Outcome(error="timeout: no answer within the deadline")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:  # a malformed URL never gets better
            return Outcome(error=f"invalid URL: {e}", permanent=True)
        except httpx.TimeoutException as e:
            return Outcome(error=f"timeout: {type(e).__name__}")
        except httpx.HTTPError as e:
            return Outcome(error=f"{type(e).__name__}: {e}")

    async def _send(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        # Streamed so that the receiver's response body is never read: only its status and headers count.
        async with self._client.stream("POST", url, headers=headers, content=body) as response:
            error = None
            if response.is_redirect:
                error = f"redirect not followed (Location: {response.headers.get('location', '')})"
            return Outcome(status_code=response.status_code, error=error,
                           retry_after_s=parse_retry_after(response.headers.get("retry-after"), time.time()))
