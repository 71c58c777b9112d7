"""One job across several devices: the frame range of a long clip split into segments rendered in parallel.

Every frame depends only on the coefficients (and its 27-frame window of them), so once the face, the audio
features and the coefficients are computed (on the first device), segment i renders frames
[start_i, stop_i) on the model replica of device i, through the same overlapped stages as a single-device job,
into its own video-only MP4 (same encoder settings). The segments are then joined without re-encoding
(ffmpeg concat, stream copy) and the speech muxed, so the result has the frames, duration and audio of the
single-device video.

Split policy (documented in docs/performance.md):
- a clip is split into at most one segment per device, each at least `min_segment_frames` long (default
  MIN_SEGMENT_FRAMES = 5 s): shorter clips run on fewer devices, and a clip under twice that runs whole on
  the first device, because a segment pays a fixed cost (source encoding, ffmpeg start, one extra keyframe);
- segments are contiguous and as equal as possible (they differ by at most one frame);
- progress is one combined count: the frames done over all segments, per stage;
- when a segment fails, the others are stopped at their next batch boundary, every segment file is removed
  and the job fails with that segment's error (a cancel of the job stops every segment the same way).
"""

from __future__ import annotations

import random
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .encode import FPS, join_videos
from .errors import Cancelled
from .pipeline import GenerateOptions, GenerateResult, Pipeline, ProgressFn, _Run

MIN_SEGMENT_FRAMES = 5 * FPS


def plan_segments(num_frames: int, devices: int, min_segment_frames: int = MIN_SEGMENT_FRAMES) -> list[range]:
    """Contiguous, near-equal frame ranges: at most one per device, each >= min_segment_frames (one at least)."""
    if num_frames < 1 or devices < 1 or min_segment_frames < 1:
        raise ValueError(f"need frames, devices and a minimum segment >= 1, got {num_frames}, {devices}, "
                         f"{min_segment_frames}")
    count = max(1, min(devices, num_frames // min_segment_frames))
    base, extra = divmod(num_frames, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


class _CombinedProgress:
    """Per-segment reports -> one count over the clip per stage; encode is reported once, at the join."""

    def __init__(self, report: Callable[[str, int, int], None], total: int, segments: int):
        self._report, self._total = report, total
        self._done: dict[str, list[int]] = {}
        self._segments = segments
        self._lock = threading.Lock()

    def for_segment(self, index: int) -> ProgressFn:
        def progress(stage: str, done: int, _total: int) -> None:
            if stage == "encode":
                return
            with self._lock:
                counts = self._done.setdefault(stage, [0] * self._segments)
                counts[index] = done
                self._report(stage, sum(counts), self._total)
        return progress


class SplitPipeline:
    """Pipelines with the same models on several devices; `generate` splits long clips across them."""

    def __init__(self, pipelines: list[Pipeline], min_segment_frames: int = MIN_SEGMENT_FRAMES):
        if not pipelines:
            raise ValueError("SplitPipeline needs at least one pipeline")
        self.pipelines = pipelines
        self.min_segment_frames = min_segment_frames
        self.last_segments: list[range] = []

    @classmethod
    def load(cls, checkpoint_dir: str | Path, devices: list[str], *,
             min_segment_frames: int = MIN_SEGMENT_FRAMES, **load_options: Any) -> SplitPipeline:
        """One Pipeline.load per device (`load_options` as Pipeline.load takes them)."""
        return cls([Pipeline.load(checkpoint_dir, device=d, **load_options) for d in devices], min_segment_frames)

    @property
    def device(self) -> str:
        return ",".join(p.device for p in self.pipelines)

    @property
    def analyzer(self) -> Any:
        return self.pipelines[0].analyzer

    @property
    def checkpoint_dir(self) -> Path:
        return self.pipelines[0].checkpoint_dir

    @property
    def models(self) -> dict:
        return self.pipelines[0].models  # size -> model: every replica loads the same sizes

    @property
    def enhancer(self) -> Any:
        return self.pipelines[0].enhancer

    def warm_up(self) -> None:
        for pipeline in self.pipelines:
            pipeline.warm_up()

    def find_face(self, image_path: str | Path):
        return self.pipelines[0].find_face(image_path)

    def generate(self, image_path: str | Path, audio_path: str | Path, out_path: str | Path,
                 options: GenerateOptions = GenerateOptions(), progress: ProgressFn | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> GenerateResult:
        """Pipeline.generate's contract; the render of a long clip runs on every device at once."""
        options.validate()
        first = self.pipelines[0]
        model, enhancer = first._model_for(options.size), first._enhancer_for(options.enhancer)
        run = _Run(progress, should_cancel)
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        source = first._stage_face(Path(image_path), model, options, run)
        mels = first._stage_audio_features(Path(audio_path), run)
        coeffs = first._stage_coefficients(model, source, mels, options, seed, run)
        total = len(coeffs)
        segments = plan_segments(total, len(self.pipelines), self.min_segment_frames)
        self.last_segments = segments
        out_path = Path(out_path)
        with tempfile.TemporaryDirectory(prefix=f".{out_path.name}.", dir=out_path.parent) as tmp:
            parts = [Path(tmp) / f"segment{i:02d}.mp4" for i in range(len(segments))]
            width, height, stages = self._render_segments(segments, parts, source, coeffs, options, run,
                                                          enhancer is not None)
            run.report("encode", 0, 1)
            join_videos(parts, Path(audio_path), out_path, total)
        run.report("encode", 1, 1)
        return GenerateResult(out_path, total / FPS, total, width, height, first.analyzer.backend, seed, stages)

    def _render_segments(self, segments: list[range], parts: list[Path], source, coeffs, options: GenerateOptions,
                         run: _Run, enhanced: bool) -> tuple[int, int, dict]:
        combined = _CombinedProgress(run.report, len(coeffs), len(segments))
        failed = threading.Event()

        def segment_cancel() -> bool:
            return failed.is_set() or run.should_cancel()

        def render(i: int) -> tuple[int, int, dict]:
            pipeline = self.pipelines[i]
            seg_run = _Run(combined.for_segment(i), segment_cancel)
            try:
                model = pipeline._model_for(options.size)
                enhancer = pipeline._enhancer_for(options.enhancer) if enhanced else None
                stages = pipeline._frame_stages(model, source, coeffs, options, enhancer, seg_run, segments[i])
                size = pipeline._stage_encode(stages, source, options, len(segments[i]), None, parts[i], seg_run)
                return (*size, stages.report())
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(len(segments), thread_name_prefix="segment") as pool:
            futures = [pool.submit(render, i) for i in range(len(segments))]
            errors = [f.exception() for f in futures]
        real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
        if real or any(errors):
            raise (real or [e for e in errors if e is not None])[0]
        results = [f.result() for f in futures]
        return results[0][0], results[0][1], _merge_reports([r[2] for r in results])


def _merge_reports(reports: list[dict]) -> dict:
    """Per-stage totals over the segments (frames and busy seconds add up; the segments ran side by side)."""
    merged: dict[str, dict] = {}
    for report in reports:
        for name, row in report.items():
            into = merged.setdefault(name, {"frames": 0, "seconds": 0.0, "ran": False})
            into["frames"] += row["frames"]
            into["seconds"] = round(into["seconds"] + row["seconds"], 4)
            into["ran"] = into["ran"] or row["ran"]
    for row in merged.values():
        row["fps"] = round(row["frames"] / row["seconds"], 3) if row["seconds"] > 0 else 0.0
    return merged
