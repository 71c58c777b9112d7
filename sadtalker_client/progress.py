"""Shows a job's progress on a terminal: a tqdm bar on a TTY, one line per stage or 10 % step otherwise (logs)."""

from __future__ import annotations

import shutil
from typing import TextIO

from tqdm import tqdm

from .models import Job


def describe(job: Job) -> str:
    """`queued (position 2)`, `render 52/130 frames, ETA 3 s`, `succeeded` ..."""
    if job.status == "queued":
        return "queued" if job.queue_position is None else f"queued (position {job.queue_position})"
    if job.status != "running":
        return job.status
    p = job.progress
    text = p.stage or "running"
    if p.frames_total:
        text += f" {p.frames_done or 0}/{p.frames_total} frames"
    text += f", ETA {p.eta_s:.0f} s" if p.eta_s is not None else ", ETA unknown"  # not measurable yet
    return text


class ProgressReporter:
    """`update(job)` on every event; use as a context manager so the bar is closed."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: tqdm | None = None
        if stream.isatty():
            # shutil falls back to 80x24 where a terminal reports 0x0 (tqdm would then hide its bar)
            columns, lines = shutil.get_terminal_size()
            # the job id was printed already: the whole width goes to the bar and the stage
            self._bar = tqdm(total=100, file=stream, unit="%", ncols=columns, nrows=lines,
                             bar_format="{percentage:3.0f}%|{bar}| [{elapsed}]{postfix}")  # postfix: ", <stage>"
        self._last_line: tuple[str, int] | None = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, job: Job) -> None:
        percent = 100.0 if job.status == "succeeded" else job.progress.percent
        if self._bar is not None:
            self._bar.n = min(max(percent, 0.0), 100.0)
            self._bar.set_postfix_str(describe(job), refresh=False)
            self._bar.refresh()
            return
        # without a terminal: a line when the stage changes or another 10 % is done
        key = (job.status + (job.progress.stage or ""), int(percent // 10))
        if key != self._last_line:
            self._last_line = key
            print(f"{percent:5.1f}%  {describe(job)}", file=self._stream, flush=True)
