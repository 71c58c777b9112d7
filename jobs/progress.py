"""Progress of a running job: the overall percent, and an ETA from the measured speed of each stage.

The ETA is the rest of the current stage at the speed measured in it so far, plus every later stage at the
speed earlier jobs of this process measured for it (seconds per output frame). It is None ("unknown") until
both are known: before the frame count is known, while the current stage has no finished unit yet and no
earlier job measured it, or while a later stage was never measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .models import STAGE_WEIGHTS, STAGES, Progress, stage_percent

SPEED_SMOOTHING = 0.3  # weight of the newest job in each stage's moving average


class StageSpeeds:
    """Seconds per output frame each stage took in earlier jobs (a moving average per stage)."""

    def __init__(self) -> None:
        self._s_per_frame: dict[str, float] = {}

    def record(self, durations_s: dict[str, float], frames: int) -> None:
        """Adds one finished job: seconds spent in each stage, and its frame count."""
        if frames <= 0:
            return
        for stage, seconds in durations_s.items():
            measured = seconds / frames
            before = self._s_per_frame.get(stage)
            self._s_per_frame[stage] = measured if before is None else (
                (1 - SPEED_SMOOTHING) * before + SPEED_SMOOTHING * measured)

    def estimate_s(self, stage: str, frames: int) -> float | None:
        """Seconds `stage` should take for `frames` frames, or None when it was never measured."""
        per_frame = self._s_per_frame.get(stage)
        return None if per_frame is None else per_frame * frames


def stages_for(enhancer: str) -> tuple[str, ...]:
    """The stages a job runs: `enhance` only with an enhancer."""
    return tuple(stage for stage in STAGES if stage != "enhance" or enhancer != "none")


def estimate_eta_s(stage: str, done: int, total: int, in_stage_s: float, later: tuple[str, ...],
                   frames: int | None, speeds: StageSpeeds) -> float | None:
    """Seconds left, or None when not yet measurable (see the module docstring)."""
    if not frames:
        return None
    if done > 0 and total > 0:
        left = in_stage_s * max(total - done, 0) / done
    else:
        expected = speeds.estimate_s(stage, frames)
        if expected is None:
            return None
        left = max(expected - in_stage_s, 0.0)
    for next_stage in later:
        expected = speeds.estimate_s(next_stage, frames)
        if expected is None:
            return None
        left += expected
    return round(left, 1)


class ProgressTracker:
    """One run's progress: stage changes, a percent that never goes down, time per stage, the ETA."""

    def __init__(self, speeds: StageSpeeds, stages: tuple[str, ...], progress: Progress | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.speeds, self.stages, self.clock = speeds, stages, clock
        self.progress = progress or Progress()
        self.stage: str | None = None
        self.stage_started = clock()
        self.durations_s: dict[str, float] = {}

    def update(self, stage: str, done: int, total: int) -> tuple[str, float] | None:
        """Applies one report; returns (stage, seconds) of a stage that just ended, else None."""
        if stage not in STAGE_WEIGHTS:
            return None
        ended = self.end_stage() if stage != self.stage else None
        if self.stage is None:
            self.stage, self.stage_started = stage, self.clock()
        progress = self.progress
        progress.stage = stage
        progress.percent = max(progress.percent, stage_percent(stage, done, total))
        if stage == "render":
            progress.frames_done, progress.frames_total = done, total
        later = self.stages[self.stages.index(stage) + 1:] if stage in self.stages else ()
        progress.eta_s = estimate_eta_s(stage, done, total, self.clock() - self.stage_started, later,
                                        progress.frames_total, self.speeds)
        return ended

    def end_stage(self) -> tuple[str, float] | None:
        """Closes the current stage (at a stage change or the end of the run)."""
        if self.stage is None:
            return None
        ended = (self.stage, self.clock() - self.stage_started)
        self.durations_s[ended[0]] = self.durations_s.get(ended[0], 0.0) + ended[1]
        self.stage = None
        return ended

    def record_speeds(self) -> None:
        """After a successful run: its stage times teach the ETA of later jobs."""
        if self.progress.frames_total:
            self.speeds.record(self.durations_s, self.progress.frames_total)
