"""Runs one render on one worker: `run_render(worker, request, progress, cancel)` -> `Outcome`.

It touches no job record and no manager: the render runs in the worker's own thread, progress reports are
handed to `progress` on the event loop, `cancel` is polled at batch boundaries, and every way the render can
end (result, error, timeout, cancel) comes back as one typed `Outcome`. The job manager applies it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .models import Failure, JobStatus
from .pool import Worker
from .render import RenderRequest, RenderResult

log = logging.getLogger(__name__)
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
DISK_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


class CancelToken:
    """The stop flag a renderer polls at batch boundaries, and the first reason it was raised for."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.reason: str | None = None  # canceled | timeout | shutdown | deleted

    def request_stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._stop.set()

    def is_set(self) -> bool:
        return self._stop.is_set()


@dataclass(frozen=True)
class Outcome:
    """How a render (or an upload) ended. `pending` is the render thread when it still runs (a timeout):
    the worker must wait for it before taking another job."""

    status: JobStatus
    result: RenderResult | None = None
    failure: Failure | None = None
    pending: asyncio.Future | None = None


def is_disk_full(error: BaseException) -> bool:
    """True when `error` (or an error it was raised from) says the disk or quota is full."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in DISK_FULL_TEXTS):  # sqlite's, ffmpeg's stderr
            return True
        current = current.__cause__ or current.__context__
    return False


def failure_outcome(error: BaseException, reason: str | None, timeout_s: float | None = None) -> Outcome:
    """The outcome for a render that raised `error` while the cancel reason was `reason`."""
    if reason == "timeout":
        return Outcome(JobStatus.FAILED, failure=Failure("timeout", f"the job took longer than the limit of "
                                                                    f"{timeout_s or 0:g} s"))
    if reason == "canceled":
        return Outcome(JobStatus.CANCELED, failure=Failure("canceled", "canceled by the client"))
    if reason in ("shutdown", "deleted"):
        return Outcome(JobStatus.FAILED, failure=Failure("interrupted", "the service shut down"))
    if is_disk_full(error):
        return Outcome(JobStatus.FAILED, failure=Failure(
            "storage_full", f"the service's disk is full ({error}); submit the job again later"))
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        status = JobStatus.CANCELED if code == "canceled" else JobStatus.FAILED
        return Outcome(status, failure=Failure(code, str(error) or code))
    log.error("render failed", exc_info=error)
    return Outcome(JobStatus.FAILED, failure=Failure("render_failed", f"{type(error).__name__}: {error}"))


async def run_render(worker: Worker, request: RenderRequest, progress: Callable[[str, int, int], None],
                     cancel: CancelToken, timeout_s: float) -> Outcome:
    """Renders `request` in the worker's thread; `progress(stage, done, total)` is called on the loop."""
    loop = asyncio.get_running_loop()

    def report(stage: str, done: int, total: int) -> None:  # called from the worker thread
        loop.call_soon_threadsafe(progress, stage, done, total)

    if worker.renderer is None:
        return Outcome(JobStatus.FAILED, failure=Failure("models_unavailable", f"{worker.name} has no renderer"))
    future = loop.run_in_executor(worker.executor, worker.renderer.render, request, report, cancel.is_set)
    try:
        result = await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError as e:
        cancel.request_stop("timeout")
        return _with_pending(failure_outcome(e, "timeout", timeout_s), future)
    except Exception as e:
        return failure_outcome(e, cancel.reason)
    if cancel.reason:  # stopped after the last boundary: the video is not wanted any more
        return failure_outcome(RuntimeError(f"stopped ({cancel.reason})"), cancel.reason)
    return Outcome(JobStatus.SUCCEEDED, result=result)


def _with_pending(outcome: Outcome, future: asyncio.Future) -> Outcome:
    return Outcome(outcome.status, outcome.result, outcome.failure, None if future.done() else future)
