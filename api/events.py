"""`GET /v1/jobs/{id}/events`: a job's live progress as Server-Sent Events.

Every event carries the whole job JSON (as `GET /v1/jobs/{id}` answers it) under a name saying what it is:
`job.queued` (also when the queue position moves), `job.progress` (running), then exactly one terminal
`job.succeeded` | `job.failed` | `job.canceled`, after which the stream ends. Event ids are derived from the
job itself (its `updated_at` in milliseconds, times 1000, plus a queue-progress term), so they increase over
the job's life across connections: a client reconnecting with `Last-Event-ID` gets only newer states.
Comment lines (`: ping`) keep idle connections open through proxies. When the service shuts down, a stream
ends without a terminal event; clients reconnect (to the next instance) and resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from jobs import JobManager
from jobs.errors import JobNotFound

from .contract import AUTH_CODES, answers
from .deps import Owner, ServicesDep

HEARTBEAT_S = 15.0  # well under common proxy idle timeouts (60 s)
RETRY_MS = 1000  # reconnect delay suggested to EventSource clients
QUEUE_SLOTS = 1000  # id term for queue progress: position 1..999 -> 999..1
TERMINAL = ("succeeded", "failed", "canceled")
MAX_EVENT_ID_DIGITS = 24  # ids are ms * 1000 + a term: 19 digits until the year 2286
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer the stream

router = APIRouter(prefix="/v1", tags=["jobs"])


def event_id(job: dict[str, Any]) -> int:
    """updated_at (ms since the epoch) * 1000 + how far up the queue the job has moved."""
    updated = datetime.fromisoformat(job["updated_at"].replace("Z", "+00:00"))
    position = job.get("queue_position")
    queue_term = QUEUE_SLOTS - min(position, QUEUE_SLOTS - 1) if job["status"] == "queued" and position else 0
    return round(updated.timestamp() * 1000) * QUEUE_SLOTS + queue_term


def event_name(job: dict[str, Any]) -> str:
    status = job["status"]
    return "job.progress" if status == "running" else f"job.{status}"


def format_event(job: dict[str, Any], ident: int) -> bytes:
    data = json.dumps(job, separators=(",", ":"))
    return f"id: {ident}\nevent: {event_name(job)}\ndata: {data}\n\n".encode()


def parse_last_event_id(value: str | None) -> int | None:
    """A number we sent earlier; anything else (non-ASCII, absurdly long) is ignored: the stream starts from the
    current state."""
    text = (value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= MAX_EVENT_ID_DIGITS else None


async def job_events(manager: JobManager, job_id: str, owner: str | None, last_event_id: int | None = None, *,
                     heartbeat_s: float = HEARTBEAT_S) -> AsyncIterator[bytes]:
    """The stream's bytes: events newer than `last_event_id`, heartbeats, ending after the terminal event
    (which is always sent, so a stream never ends without saying how the job ended). The manager's watch
    also yields when a queued job's position moves."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    updates = manager.watch(job_id, owner)
    pending = asyncio.ensure_future(anext(updates))
    last_sent, last_write, current = last_event_id or 0, time.monotonic(), None
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=heartbeat_s)
            if pending in done:
                try:
                    current = pending.result()
                except (StopAsyncIteration, JobNotFound):  # ended, or deleted before the watch began
                    return
                pending = asyncio.ensure_future(anext(updates))
            ident = event_id(current) if current is not None else 0
            if current is not None and (ident > last_sent or current["status"] in TERMINAL):
                last_sent = max(ident, last_sent + 1)  # strictly increasing even within one millisecond
                yield format_event(current, last_sent)
                last_write = time.monotonic()
                if current["status"] in TERMINAL:
                    return
            elif not manager.accepting:  # shutting down: end here, the client resumes on the next instance
                return
            elif time.monotonic() - last_write >= heartbeat_s:
                yield b": ping\n\n"
                last_write = time.monotonic()
    finally:
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending
        await updates.aclose()


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={**answers(*AUTH_CODES, "not_found"), 200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "Server-Sent Events: job.queued, job.progress, then one of job.succeeded, "
                                    "job.failed, job.canceled; each `data` is the job JSON."}},
)
async def stream_job_events(
    job_id: str, services: ServicesDep, owner: Owner,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
) -> StreamingResponse:
    """The job's live progress (stage, percent, frames, ETA, queue position) until it ends.

    Send the API key as X-API-Key (browsers: read the stream with fetch(), not EventSource)."""
    job = services.manager.get(job_id, owner)  # 404 before the stream starts
    await services.urls.refresh(job)  # a finished job's first event carries a fresh video URL
    stream = job_events(services.manager, job_id, owner, parse_last_event_id(last_event_id))
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
