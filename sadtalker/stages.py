"""Overlapping stages: a chain of batch iterators, each in its own thread, joined by bounded queues.

`Stages(source, [(name, transform), ...])` runs `source()` (e.g. the renderer's batch generator) in one
thread and each `transform(iterator) -> iterator` (post-processing, enhancement) in the next, so while
batch k is encoded, batch k+1 is enhanced and batch k+2 rendered: the wall time approaches that of the
slowest stage instead of the sum. At most `depth` batches wait between two stages, so memory stays flat
in the clip length. The caller drains the last stage in its own thread (`drain`), which is where the
encoder lives. The first error of any stage (including Cancelled, raised at a batch boundary) stops every
other stage and is re-raised by `drain`; leaving the `with` block always joins every thread.

On CUDA each stage thread runs on its own stream and synchronizes it before handing a batch on, so a
batch is complete whichever stream reads it next.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch

POLL_S = 0.05           # how often a blocked stage looks at the stop flag
DEFAULT_DEPTH = 2       # batches waiting between two stages
_END = object()         # end-of-stream marker

Transform = Callable[[Iterator[Any]], Iterator[Any]]


@dataclass
class StageStats:
    """What one stage did: batches and frames it produced and the seconds it was busy (not waiting)."""

    name: str
    batches: int = 0
    frames: int = 0
    busy_s: float = 0.0
    waited: float = 0.0   # seconds of the current batch spent waiting for the previous stage

    def as_dict(self, wall_s: float) -> dict[str, Any]:
        fps = self.frames / self.busy_s if self.busy_s > 0 else 0.0
        share = self.busy_s / wall_s if wall_s > 0 else 0.0
        return {"frames": self.frames, "seconds": round(self.busy_s, 4), "fps": round(fps, 3),
                "busy_share": round(share, 3), "ran": self.frames > 0}


class _Stopped(BaseException):   # not an Exception: a stage's own `except Exception` must not swallow it
    """Raised inside a stage thread when another stage failed or the consumer left."""


class Stages(AbstractContextManager):
    """Run `source()` and `transforms` in threads; iterate the result with `drain(name, sink)`."""

    def __init__(self, source_name: str, source: Callable[[], Iterator[Any]],
                 transforms: Sequence[tuple[str, Transform]] = (), *, depth: int = DEFAULT_DEPTH,
                 device: str | torch.device = "cpu"):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._cuda = torch.device(device).type == "cuda"
        names = [source_name] + [name for name, _ in transforms]
        self.stats = {name: StageStats(name) for name in names}
        self._queues = [queue.Queue(maxsize=depth) for _ in names]
        self._threads = [threading.Thread(target=self._run_source, args=(source, self.stats[source_name],
                                                                         self._queues[0]),
                                          name=f"stage-{source_name}", daemon=True)]
        for i, (name, transform) in enumerate(transforms):
            self._threads.append(threading.Thread(
                target=self._run_transform, args=(transform, self.stats[name], self._queues[i], self._queues[i + 1]),
                name=f"stage-{name}", daemon=True))
        self.started = time.perf_counter()
        self.wall_s = 0.0
        for thread in self._threads:
            thread.start()

    # -- the caller's side ------------------------------------------------------------------------------

    def drain(self, sink_name: str, sink: Callable[[Any], None]) -> None:
        """Hand every batch of the last stage to `sink` in this thread; re-raise the first stage error."""
        stats = self.stats.setdefault(sink_name, StageStats(sink_name))
        last = self._queues[-1]
        while True:
            item = self._get(last, caller=True)
            if item is _END:
                break
            began = time.perf_counter()
            sink(item)
            stats.busy_s += time.perf_counter() - began
            stats.batches += 1
            stats.frames += _frames(item)
        self.wall_s = time.perf_counter() - self.started

    def report(self) -> dict[str, dict[str, Any]]:
        """Per stage: frames, busy seconds, frames per busy second, busy share of the wall time, ran."""
        wall = self.wall_s or (time.perf_counter() - self.started)
        return {name: stats.as_dict(wall) for name, stats in self.stats.items()}

    def close(self) -> None:
        """Stop every stage and wait for its thread (a stage in the middle of a batch finishes it first)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the stage threads ------------------------------------------------------------------------------

    def _run_source(self, source: Callable[[], Iterator[Any]], stats: StageStats, out: queue.Queue) -> None:
        self._run(lambda: source(), stats, out)

    def _run_transform(self, transform: Transform, stats: StageStats, inp: queue.Queue, out: queue.Queue) -> None:
        self._run(lambda: transform(self._inputs(inp, stats)), stats, out)

    def _run(self, make: Callable[[], Iterator[Any]], stats: StageStats, out: queue.Queue) -> None:
        stream = torch.cuda.Stream() if self._cuda else None
        iterator = None
        try:
            with torch.cuda.stream(stream) if stream is not None else nullcontext():
                iterator = make()
                while True:
                    began = time.perf_counter()
                    stats.waited = 0.0
                    try:
                        item = next(iterator)
                    except StopIteration:
                        break
                    if stream is not None:
                        stream.synchronize()
                    stats.busy_s += time.perf_counter() - began - stats.waited
                    stats.batches += 1
                    stats.frames += _frames(item)
                    self._put(out, item)
            self._put(out, _END)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - every stage error is handed to the caller
            with self._lock:
                self._errors.append(e)
            self._stop.set()
        finally:
            if iterator is not None and hasattr(iterator, "close"):
                iterator.close()   # runs the generator's own clean-up in the thread that ran it

    def _inputs(self, inp: queue.Queue, stats: StageStats) -> Iterator[Any]:
        """The previous stage's batches; time spent waiting for them is not counted as busy."""
        while True:
            began = time.perf_counter()
            item = self._get(inp)
            stats.waited += time.perf_counter() - began
            if item is _END:
                return
            yield item

    def _get(self, q: queue.Queue, caller: bool = False) -> Any:
        while True:
            if self._stop.is_set():
                self._raise_stopped(caller)
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def _put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def _raise_stopped(self, caller: bool) -> None:
        if not caller:
            raise _Stopped
        for thread in self._threads:   # let the failing stage finish recording its error
            thread.join()
        with self._lock:
            error = self._errors[0] if self._errors else None
        if error is None:
            raise RuntimeError("a stage stopped without an error")
        raise error


def _frames(item: Any) -> int:
    """Frames in a batch: its first dimension (one for anything without a length)."""
    try:
        return len(item)
    except TypeError:
        return 1
