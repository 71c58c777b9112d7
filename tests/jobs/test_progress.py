"""The ETA comes from measured stage speeds and is None ("unknown") until they can be measured."""

from __future__ import annotations

import pytest

from jobs.models import stage_percent
from jobs.progress import ProgressTracker, StageSpeeds, estimate_eta_s, stages_for

LATER = ("encode", "upload")


def test_stage_percent_is_monotonic_over_stages():
    points = [stage_percent(stage, done, 4) for stage in ("preprocess", "audio_to_coeff", "render", "enhance",
                                                          "encode", "upload") for done in range(5)]
    assert points == sorted(points) and points[0] == 0 and points[-1] == 100


def test_no_eta_at_frame_zero_of_a_first_job():
    """The issue's case: frame 0 of 25, nothing measured yet. The old percent-based formula said ~19 s."""
    assert estimate_eta_s("render", 0, 25, 40.0, LATER, 25, StageSpeeds()) is None


def test_no_eta_while_a_later_stage_was_never_measured():
    speeds = StageSpeeds()
    speeds.record({"encode": 2.5}, frames=25)  # upload never measured
    assert estimate_eta_s("render", 5, 25, 10.0, LATER, 25, speeds) is None


def test_eta_is_the_measured_rest_of_this_stage_plus_the_later_stages():
    speeds = StageSpeeds()
    speeds.record({"render": 50.0, "encode": 5.0, "upload": 1.0}, frames=50)  # s per frame: 1, 0.1, 0.02
    # 5 of 25 frames took 10 s here (2 s/frame, slower than before): 20 frames left -> 40 s, then 2.5 + 0.5 s
    assert estimate_eta_s("render", 5, 25, 10.0, LATER, 25, speeds) == pytest.approx(43.0)
    # at frame 0 this job's speed is unknown: the earlier jobs' speed stands in (25 s - 3 s already spent)
    assert estimate_eta_s("render", 0, 25, 3.0, LATER, 25, speeds) == pytest.approx(22.0 + 3.0)
    assert estimate_eta_s("preprocess", 0, 1, 0.0, ("render", *LATER), None, speeds) is None, "frames unknown"


def test_speeds_are_a_moving_average():
    speeds = StageSpeeds()
    speeds.record({"render": 10.0}, frames=10)
    speeds.record({"render": 20.0}, frames=10)
    assert speeds.estimate_s("render", 10) == pytest.approx(0.7 * 10 + 0.3 * 20)


def test_tracker_times_stages_and_teaches_later_jobs():
    now = [0.0]
    speeds = StageSpeeds()
    tracker = ProgressTracker(speeds, stages_for("none"), clock=lambda: now[0])
    assert "enhance" not in tracker.stages and "enhance" in stages_for("gfpgan")
    for stage, at in (("preprocess", 0.0), ("audio_to_coeff", 1.0), ("render", 2.0)):
        now[0] = at
        tracker.update(stage, 0, 1 if stage != "render" else 10)
    now[0] = 7.0
    tracker.update("render", 5, 10)
    assert tracker.progress.frames_done == 5 and tracker.progress.eta_s is None, "encode/upload unmeasured"
    for stage, at in (("encode", 12.0), ("upload", 13.0)):
        now[0] = at
        ended = tracker.update(stage, 0, 1)
        assert ended is not None
    now[0] = 13.5
    tracker.end_stage()
    assert tracker.durations_s == pytest.approx({"preprocess": 1.0, "audio_to_coeff": 1.0, "render": 10.0,
                                                 "encode": 1.0, "upload": 0.5})
    tracker.record_speeds()
    second = ProgressTracker(speeds, stages_for("none"), clock=lambda: now[0])
    second.update("render", 0, 10)
    assert second.progress.eta_s == pytest.approx(10.0 + 1.0 + 0.5)
