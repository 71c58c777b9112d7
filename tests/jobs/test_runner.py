"""run_render(worker, request, progress, cancel) -> Outcome: every way a render ends, as one typed value."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jobs import Failure, JobStatus, RenderRequest, RenderResult
from jobs.pool import Worker
from jobs.runner import CancelToken, is_disk_full, run_render


class ScriptedRenderer:
    """Renders nothing: reports two stages, then does what `action` says (return, raise, or wait)."""

    def __init__(self, action):
        self.action = action
        self.threads: set[int] = set()

    def render(self, request, progress, should_cancel) -> RenderResult:
        self.threads.add(threading.get_ident())
        progress("preprocess", 1, 1)
        progress("render", 2, 4)
        return self.action(request, should_cancel)


def _worker(renderer) -> Worker:
    return Worker("worker-0", "cpu", ThreadPoolExecutor(1), state="ready", renderer=renderer)


def _request(tmp_path: Path) -> RenderRequest:
    return RenderRequest("job_1", tmp_path / "a.jpg", tmp_path / "a.wav", tmp_path / "out.mp4")


async def test_a_result_and_its_progress_on_the_loop(tmp_path):
    result = RenderResult(tmp_path / "out.mp4", 1.0, 25, 256, 256)
    reports: list[tuple] = []
    loop_thread = threading.get_ident()

    def progress(*report):
        assert threading.get_ident() == loop_thread
        reports.append(report)

    renderer = ScriptedRenderer(lambda request, should_cancel: result)
    outcome = await run_render(_worker(renderer), _request(tmp_path), progress, CancelToken(), 10)
    await asyncio.sleep(0)  # reports are handed over with call_soon_threadsafe
    assert outcome.status is JobStatus.SUCCEEDED and outcome.result is result and outcome.failure is None
    assert reports == [("preprocess", 1, 1), ("render", 2, 4)] and loop_thread not in renderer.threads


async def test_errors_become_failures(tmp_path):
    class Coded(Exception):
        code = "no_face_detected"

    def raises(error):
        def action(request, should_cancel):
            raise error
        return action

    cases = [
        (Coded("no face"), JobStatus.FAILED, Failure("no_face_detected", "no face")),
        (ValueError("boom"), JobStatus.FAILED, Failure("render_failed", "ValueError: boom")),
        (OSError(errno.ENOSPC, "No space left on device"), JobStatus.FAILED, None),
    ]
    for error, status, failure in cases:
        outcome = await run_render(_worker(ScriptedRenderer(raises(error))), _request(tmp_path), lambda *a: None,
                                   CancelToken(), 10)
        assert outcome.status is status
        if failure is not None:
            assert outcome.failure == failure
        else:
            assert outcome.failure.code == "storage_full"


async def test_cancel_and_timeout(tmp_path):
    release = threading.Event()

    def waits(request, should_cancel):
        while not should_cancel():
            release.wait(0.01)
        raise RuntimeError("stopped at a batch boundary")

    cancel = CancelToken()
    task = asyncio.create_task(run_render(_worker(ScriptedRenderer(waits)), _request(tmp_path), lambda *a: None,
                                          cancel, 10))
    await asyncio.sleep(0.05)
    cancel.request_stop("canceled")
    outcome = await task
    assert outcome.status is JobStatus.CANCELED and outcome.failure.code == "canceled"

    def ignores_cancel(request, should_cancel):
        release.wait(5)
        return RenderResult(request.output_path, 1.0, 25, 256, 256)

    cancel = CancelToken()
    outcome = await run_render(_worker(ScriptedRenderer(ignores_cancel)), _request(tmp_path), lambda *a: None,
                               cancel, 0.1)
    assert outcome.failure.code == "timeout" and cancel.reason == "timeout" and cancel.is_set()
    assert outcome.pending is not None and not outcome.pending.done(), "the thread still runs: the worker waits"
    release.set()
    await outcome.pending


def test_disk_full_is_found_in_the_cause_chain():
    class EncodeError(Exception):
        code = "encode_failed"

    assert is_disk_full(EncodeError("ffmpeg: av_interleaved_write_frame(): No space left on device"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise OSError(errno.EDQUOT, "quota")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
