"""Durable job records and idempotency keys in one local SQLite file.

Calls are short local transactions (WAL, one connection guarded by a lock), cheap enough to run on the
event loop. The webhook outbox lives in the same file (owned by `webhooks`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .models import Job, JobStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""


def _job_from_row(data: str) -> Job:
    fields: dict[str, Any] = json.loads(data)
    return Job.from_record(fields)


class JobStore:
    """SQLite-backed job records; every method is a short blocking transaction."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def save(self, job: Job) -> None:
        data = asdict(job)
        data["status"] = job.status.value
        self._query(
            "INSERT INTO jobs (id, owner, status, created_at, finished_at, data) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status=excluded.status, finished_at=excluded.finished_at, "
            "data=excluded.data",
            (job.id, job.owner, job.status.value, job.created_at, job.finished_at, json.dumps(data)),
        )

    def probe(self) -> None:
        """One small write; raises sqlite3.Error when the database cannot be written (disk full, read-only)."""
        self._query("INSERT OR REPLACE INTO health (id, at) VALUES (1, ?)", (time.time(),))

    def get(self, job_id: str) -> Job | None:
        rows = self._query("SELECT data FROM jobs WHERE id = ?", (job_id,))
        return _job_from_row(rows[0][0]) if rows else None

    def delete(self, job_id: str) -> None:
        self._query("DELETE FROM jobs WHERE id = ?", (job_id,))

    def list(
        self, owner: str, *, status: JobStatus | None = None, limit: int = 20, before: Job | None = None
    ) -> list[Job]:
        """The owner's jobs, newest first; `before` is the last job of the previous page."""
        sql, params = "SELECT data FROM jobs WHERE owner = ?", [owner]
        if status is not None:
            sql += " AND status = ?"
            params.append(status.value)
        if before is not None:
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params += [before.created_at, before.created_at, before.id]
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_job_from_row(row[0]) for row in self._query(sql, tuple(params))]

    def unfinished(self) -> list[Job]:
        """Queued and running jobs, oldest first (what a restart must pick up again)."""
        rows = self._query(
            "SELECT data FROM jobs WHERE status IN (?, ?) ORDER BY created_at, id",
            (JobStatus.QUEUED.value, JobStatus.RUNNING.value),
        )
        return [_job_from_row(row[0]) for row in rows]

    def finished_before(self, cutoff: float, limit: int = 500) -> list[Job]:
        rows = self._query(
            "SELECT data FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT ?", (cutoff, limit)
        )
        return [_job_from_row(row[0]) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in JobStatus}
        counts.update(dict(self._query("SELECT status, COUNT(*) FROM jobs GROUP BY status")))
        return counts

    # --- idempotency keys
    def idempotent_job(self, owner: str, key: str, ttl_s: float) -> tuple[str, str] | None:
        """(job_id, request_hash) stored for the key within the last `ttl_s` seconds, else None."""
        rows = self._query(
            "SELECT job_id, request_hash FROM idempotency_keys WHERE owner = ? AND key = ? AND created_at >= ?",
            (owner, key, time.time() - ttl_s),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def remember_key(self, owner: str, key: str, request_hash: str, job_id: str) -> None:
        self._query(
            "INSERT OR REPLACE INTO idempotency_keys (owner, key, request_hash, job_id, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (owner, key, request_hash, job_id, time.time()),
        )

    def forget_keys_before(self, cutoff: float) -> None:
        self._query("DELETE FROM idempotency_keys WHERE created_at < ?", (cutoff,))
