"""Overlapped stages (sadtalker/stages.py): order, bounded queues, errors and cancellation stop every thread,
and ffmpeg is closed when a stage fails while the real encoder is draining."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from sadtalker.encode import VideoEncoder
from sadtalker.errors import Cancelled
from sadtalker.stages import Stages


def stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stage-")]


def drained(stages: Stages, sink, encoder: VideoEncoder | None = None) -> None:
    with stages, encoder or contextlib.nullcontext():
        stages.drain("encode", sink)


def numbers(n: int, closed: list | None = None, sleep_s: float = 0.0):
    try:
        for i in range(n):
            time.sleep(sleep_s)
            yield np.full((2, 1), i)
    finally:
        if closed is not None:
            closed.append(True)


def test_batches_pass_in_order_through_every_stage():
    out = []
    with Stages("source", lambda: numbers(10), [("double", lambda it: (b * 2 for b in it)),
                                                 ("plus", lambda it: (b + 1 for b in it))]) as stages:
        stages.drain("sink", out.append)
    assert [int(b[0, 0]) for b in out] == [2 * i + 1 for i in range(10)]
    report = stages.report()
    assert list(report) == ["source", "double", "plus", "sink"]
    assert all(row["frames"] == 20 and row["ran"] for row in report.values())
    assert stage_threads() == []


def test_queues_are_bounded_so_a_slow_sink_holds_back_the_source():
    produced = []

    def source():
        for i in range(20):
            produced.append(i)
            yield [i]

    def slow_sink(batch):
        time.sleep(0.02)
        # source -> queue(2) -> pass -> queue(2) -> here: at most 2 + 1 + 2 + 1 batches ahead
        assert len(produced) - batch[0] <= 7

    with Stages("source", source, [("pass", lambda it: it)], depth=2) as stages:
        stages.drain("sink", slow_sink)
    assert len(produced) == 20


def test_a_failing_stage_stops_the_others_and_its_error_reaches_the_caller():
    closed = []

    def fail_on_third(batches):
        for i, batch in enumerate(batches):
            if i == 2:
                raise ZeroDivisionError("post-processing broke")
            yield batch

    out = []
    with pytest.raises(ZeroDivisionError, match="post-processing broke"):
        drained(Stages("render", lambda: numbers(1000, closed), [("post", fail_on_third)]), out.append)
    assert len(out) <= 2
    assert closed == [True]          # the source generator was closed in its own thread
    assert stage_threads() == []


def test_cancel_in_the_source_is_raised_as_cancelled():
    def source():
        yield [0]
        raise Cancelled("rendering canceled after 1 of 9 frames")

    with pytest.raises(Cancelled):
        drained(Stages("render", source, [("enhance", lambda it: it)]), lambda batch: None)
    assert stage_threads() == []


def test_a_failing_sink_stops_every_stage():
    closed = []

    def sink(batch):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        drained(Stages("render", lambda: numbers(1000, closed), [("post", lambda it: it)]), sink)
    assert closed == [True] and stage_threads() == []


def test_stages_run_at_the_same_time():
    """Each stage records when it was busy; some interval of one stage overlaps one of another."""
    busy: dict[str, list[tuple[float, float]]] = {"render": [], "enhance": [], "encode": []}

    def timed(name: str, seconds: float):
        began = time.perf_counter()
        time.sleep(seconds)
        busy[name].append((began, time.perf_counter()))

    def source():
        for i in range(6):
            timed("render", 0.03)
            yield [i]

    def enhance(batches):
        for batch in batches:
            timed("enhance", 0.03)
            yield batch

    with Stages("render", source, [("enhance", enhance)]) as stages:
        stages.drain("encode", lambda batch: timed("encode", 0.03))
    overlaps = [(a, b) for a in busy["render"] for b in busy["enhance"] + busy["encode"]
                if a[0] < b[1] and b[0] < a[1]]
    assert overlaps
    # and the wall time is below the serial sum of the three stages
    assert stages.wall_s < sum(row["seconds"] for row in stages.report().values())


def test_ffmpeg_is_closed_and_no_partial_file_left_when_a_stage_fails(tmp_path):
    out = tmp_path / "clip.mp4"

    def frames():
        for _ in range(50):
            yield np.zeros((2, 64, 64, 3), np.uint8)

    def fail_late(batches):
        for i, batch in enumerate(batches):
            if i == 3:
                raise RuntimeError("GFPGAN out of memory")
            yield batch

    encoder = VideoEncoder(out, None, 64, 64, 100)
    with pytest.raises(RuntimeError, match="out of memory"):
        drained(Stages("render", frames, [("enhance", fail_late)]), encoder.write, encoder)
    assert encoder._proc.poll() is not None   # ffmpeg was stopped, not left waiting for frames
    assert list(tmp_path.iterdir()) == []
    assert stage_threads() == []


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        Stages("render", lambda: iter(()), depth=0)
