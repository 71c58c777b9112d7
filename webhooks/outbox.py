"""The durable outbox: webhook deliveries and their attempts in tables of the job database (SQLite).

Tables are prefixed `webhook_` so the file can be shared with the job store. WAL mode and short transactions keep
both writers moving; a claimed delivery carries a lease (`locked_until`) so two senders on one file never send the
same delivery at once, and a crashed sender's claims expire by themselves.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PENDING, DELIVERED, FAILED, SKIPPED, SUPERSEDED = "pending", "delivered", "failed", "skipped", "superseded"
# A dropped job's id is remembered this long (seconds) so late events of it are refused; jobs end long before.
TOMBSTONE_TTL_S = 30 * 24 * 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY,                 -- the webhook-id header, stable across retries
    job_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,                  -- exact bytes sent (and signed) on every attempt
    status TEXT NOT NULL,                -- pending | delivered | failed | skipped | superseded
    attempt_count INTEGER NOT NULL DEFAULT 0,  -- attempts since created or re-sent
    created_at REAL NOT NULL,            -- epoch seconds
    next_attempt_at REAL,                -- epoch seconds; NULL unless pending
    locked_until REAL                    -- lease of the sender currently attempting it
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_job ON webhook_deliveries (job_id);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON webhook_attempts (delivery_id);
CREATE TABLE IF NOT EXISTS webhook_dropped_jobs (job_id TEXT PRIMARY KEY, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str
    event: str
    url: str
    body: bytes
    status: str
    attempt_count: int
    next_attempt_at: float | None


def iso(ts: float | None) -> str | None:
    """Epoch seconds as the job JSON's UTC ISO 8601 form (`2026-11-27T16:00:00.123Z`)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outbox:
    """Blocking, thread-safe access to the webhook tables; every call is one short transaction."""

    def __init__(self, db_path: Path) -> None:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path), timeout=5.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, delivery: Delivery, now: float) -> bool:
        """Store a new delivery unless its job was dropped (checked in the same transaction)."""
        with self._tx() as db:
            return bool(db.execute(
                "INSERT INTO webhook_deliveries (id, job_id, event, url, body, status, attempt_count, created_at,"
                " next_attempt_at) SELECT ?, ?, ?, ?, ?, ?, 0, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM webhook_dropped_jobs WHERE job_id = ?)",
                (delivery.id, delivery.job_id, delivery.event, delivery.url, delivery.body, delivery.status, now,
                 delivery.next_attempt_at, delivery.job_id),
            ).rowcount)

    def claim_due(self, now: float, limit: int, lease_s: float) -> list[Delivery]:
        """Lease up to `limit` pending deliveries due by `now` (oldest first) to this sender."""
        if limit <= 0:
            return []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, job_id, event, url, body, status, attempt_count, next_attempt_at"
                " FROM webhook_deliveries WHERE status = ? AND next_attempt_at <= ?"
                " AND (locked_until IS NULL OR locked_until < ?) ORDER BY next_attempt_at, created_at LIMIT ?",
                (PENDING, now, now, limit),
            ).fetchall()
            db.executemany("UPDATE webhook_deliveries SET locked_until = ? WHERE id = ?",
                           [(now + lease_s, r[0]) for r in rows])
        return [Delivery(*r) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending delivery falls due (a leased one: when its lease ends)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(MAX(next_attempt_at, COALESCE(locked_until, 0))) FROM webhook_deliveries"
                " WHERE status = ?", (PENDING,)).fetchone()
        return row[0]

    def record_attempt(self, delivery_id: str, *, at: float, status_code: int | None, error: str | None,
                       duration_ms: int, status: str, next_attempt_at: float | None) -> bool:
        """Store one attempt and the delivery's new state; False when the delivery is gone (job dropped)."""
        with self._tx() as db:
            updated = db.execute(
                "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, locked_until = NULL,"
                " attempt_count = attempt_count + 1 WHERE id = ?",
                (status, next_attempt_at, delivery_id),
            ).rowcount
            if updated:
                db.execute(
                    "INSERT INTO webhook_attempts (delivery_id, at, status_code, error, duration_ms)"
                    " VALUES (?, ?, ?, ?, ?)", (delivery_id, at, status_code, error, duration_ms))
        return bool(updated)

    def release(self, delivery_ids: list[str]) -> None:
        """End this sender's leases (on close) so a restarted sender resumes them at once."""
        with self._tx() as db:
            db.executemany("UPDATE webhook_deliveries SET locked_until = NULL WHERE id = ?",
                           [(i,) for i in delivery_ids])

    def resend(self, delivery_id: str, now: float) -> bool:
        """Make a delivery pending again with a fresh attempt budget; False when it does not exist."""
        with self._tx() as db:  # a lease is kept: an attempt in flight is not doubled, its outcome counts
            return bool(db.execute(
                "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, attempt_count = 0 WHERE id = ?",
                (PENDING, now, delivery_id)).rowcount)

    def pending_unattempted(self, job_id: str, event: str) -> Delivery | None:
        """The newest pending `event` delivery of the job that was never attempted (progress coalescing)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, job_id, event, url, body, status, attempt_count, next_attempt_at"
                " FROM webhook_deliveries WHERE job_id = ? AND event = ? AND status = ? AND attempt_count = 0"
                " AND locked_until IS NULL ORDER BY created_at DESC LIMIT 1", (job_id, event, PENDING)).fetchone()
        return Delivery(*row) if row else None

    def replace_body(self, delivery_id: str, body: bytes) -> bool:
        with self._tx() as db:
            return bool(db.execute(
                "UPDATE webhook_deliveries SET body = ? WHERE id = ? AND status = ? AND locked_until IS NULL",
                (body, delivery_id, PENDING)).rowcount)

    def supersede(self, job_id: str, event: str) -> None:
        """Stop pending `event` deliveries of a job (progress once the job has ended)."""
        with self._tx() as db:
            db.execute("UPDATE webhook_deliveries SET status = ?, next_attempt_at = NULL"
                       " WHERE job_id = ? AND event = ? AND status = ?", (SUPERSEDED, job_id, event, PENDING))

    def drop_job(self, job_id: str, now: float) -> list[str]:
        """Forget every delivery of a deleted job and refuse later ones; returns the ids removed."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM webhook_deliveries WHERE job_id = ?", (job_id,))]
            db.executemany("DELETE FROM webhook_attempts WHERE delivery_id = ?", [(i,) for i in ids])
            db.execute("DELETE FROM webhook_deliveries WHERE job_id = ?", (job_id,))
            db.execute("INSERT OR REPLACE INTO webhook_dropped_jobs (job_id, at) VALUES (?, ?)", (job_id, now))
            db.execute("DELETE FROM webhook_dropped_jobs WHERE at < ?", (now - TOMBSTONE_TTL_S,))
        return ids

    def list_for_job(self, job_id: str) -> list[dict]:
        """The job's deliveries, oldest first, each with its attempts (times in ISO 8601 UTC)."""
        with self._lock:
            deliveries = self._db.execute(
                "SELECT id, event, url, status, created_at, next_attempt_at FROM webhook_deliveries"
                " WHERE job_id = ? ORDER BY created_at, rowid", (job_id,)).fetchall()
            attempts = self._db.execute(
                "SELECT a.delivery_id, a.at, a.status_code, a.error, a.duration_ms FROM webhook_attempts a"
                " JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.job_id = ? ORDER BY a.id",
                (job_id,)).fetchall()
        by_delivery: dict[str, list[dict]] = {}
        for delivery_id, at, code, error, duration_ms in attempts:
            by_delivery.setdefault(delivery_id, []).append(
                {"at": iso(at), "status_code": code, "error": error, "duration_ms": duration_ms})
        return [
            {"id": d_id, "event": event, "url": url, "status": status, "created_at": iso(created),
             "attempts": by_delivery.get(d_id, []), "next_attempt_at": iso(next_at)}
            for d_id, event, url, status, created, next_at in deliveries
        ]

    def job_of(self, delivery_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT job_id FROM webhook_deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return row[0] if row else None
