"""From an HTTP request to a queued job: parse, replay an idempotent request, check content, submit.

Shared by `POST /v1/jobs` and the legacy `POST /generate_talking_video`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
from collections.abc import Iterator

from fastapi import Request

from jobs import Job, JobManager, NewJob
from jobs.manager import STORAGE_RETRY_AFTER_S

from .capabilities import check_options
from .deps import Services
from .errors import ApiError
from .media import silence

DEFAULT_WEBHOOK_EVENTS = ["job.started", "job.succeeded", "job.failed", "job.canceled"]
MAX_IDEMPOTENCY_KEY_CHARS = 255
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # the disk is full or read-only


@contextlib.contextmanager
def storage_faults(manager: JobManager) -> Iterator[None]:
    """A full or read-only disk while inputs are written answers 503 storage_unavailable (not a 500); the
    storage probe hears of it, so /readyz and the next submissions refuse at once."""
    try:
        yield
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            raise
        manager.storage_probe.report(f"writing a request's inputs failed: {e}")
        raise ApiError("storage_unavailable", f"the service cannot store the inputs right now ({e.strerror}); "
                       "nothing was queued", headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)}) from e


def _check_idempotency_key(key: str | None) -> None:
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable()):
        raise ApiError("validation_error", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters")


async def submit_job(request: Request, services: Services, owner: str, idempotency_key: str | None) -> tuple[Job, bool]:
    """Returns (job, replayed). Nothing is queued unless every input passed its checks."""
    manager = services.manager
    _check_idempotency_key(idempotency_key)
    manager.check_accepting()  # 503 / 429 before a byte of the body is read
    job_id = manager.new_id()
    dest = manager.input_dir(job_id)
    try:
        with storage_faults(manager):
            parsed = await services.reader.parse(request, dest)
            earlier = manager.replay(owner, idempotency_key, parsed.request_hash) if idempotency_key else None
            if earlier is not None:
                await asyncio.to_thread(shutil.rmtree, dest, True)
                return earlier, True
            check_options(services.pool, parsed.body.options())  # before any fetch or decode
            report = await services.reader.complete(parsed, dest)
            body = parsed.body
            if report.audio.silent and not body.allow_silent:
                raise ApiError("silent_audio", f"the audio is silent or nearly so ({silence(report.audio)}); send "
                               "speech, or set allow_silent=true to animate silence on purpose")
            job, replayed = await manager.submit(NewJob(
                id=job_id, owner=owner, options=body.options(),
                inputs={name: str(path) for name, path in report.files.items()},
                metadata=body.metadata, webhook_url=body.webhook_url or services.settings.sadtalker_webhook_url,
                webhook_events=body.webhook_events or DEFAULT_WEBHOOK_EVENTS, origin=services.base_url(request),
                idempotency_key=idempotency_key, request_hash=parsed.request_hash,
            ))
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, dest, True)
        raise
    if replayed:
        await asyncio.to_thread(shutil.rmtree, dest, True)
    else:
        services.metrics.submitted.inc()
    return job, replayed
