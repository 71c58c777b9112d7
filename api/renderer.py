"""The production renderer: `sadtalker.pipeline.Pipeline` behind the jobs `Renderer` protocol.

`sadtalker` (and torch) are imported only when a worker loads, so importing the app stays cheap and a
missing model package shows up in /readyz instead of failing the process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs import Renderer, RendererFactory, RenderRequest, RenderResult
from jobs.errors import ModelsUnavailable

log = logging.getLogger(__name__)
OPTION_NAMES = ("preprocess", "still", "enhancer", "size", "pose_style", "expression_scale", "batch_size",
                "ref_eyeblink", "ref_pose", "seed")


class PipelineRenderer:
    """One loaded, warmed-up Pipeline on one device."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def render(self, request: RenderRequest, progress: Callable[[str, int, int], None],
               should_cancel: Callable[[], bool]) -> RenderResult:
        from sadtalker.pipeline import GenerateOptions

        options = GenerateOptions(**{name: request.options[name] for name in OPTION_NAMES if name in request.options})
        try:
            result = self.pipeline.generate(request.image_path, request.audio_path, request.output_path, options,
                                            progress=progress, should_cancel=should_cancel)
        except BaseException:
            self._release_cached_memory()  # a canceled or failed job hands its GPU memory back at once
            raise
        return RenderResult(result.video_path, result.duration_s, result.frames, result.width, result.height,
                            {"face_detector": result.face_detector, "seed": result.seed})

    def _release_cached_memory(self) -> None:
        if str(self.pipeline.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def check_face(self, image_path: Path) -> dict[str, Any]:
        info = self.pipeline.find_face(image_path)
        return {"box": list(info.box), "score": info.score, "detector": info.detector, "faces": info.faces}


def pipeline_renderer_factory(checkpoint_dir: Path, *, sizes: tuple[int, ...] = (256,), half: bool = False,
                              enhancer: bool = True, precision: str = "fp32", compile_models: bool = False,
                              min_segment_frames: int = 125) -> RendererFactory:
    """Device name -> PipelineRenderer with every model loaded and warmed up (runs in the worker's thread).

    A comma-separated device list (SADTALKER_SPLIT_DEVICES) loads one replica per device behind a
    SplitPipeline, which splits long clips across them.
    """

    def load(device: str) -> Renderer:
        missing = missing_checkpoints(checkpoint_dir, sizes)
        if missing:
            raise ModelsUnavailable(
                f"checkpoints missing in {checkpoint_dir}: {', '.join(missing)}. Fetch them with "
                "scripts/download_checkpoints.sh (or point SADTALKER_CHECKPOINT_DIR at them); the service "
                "looks for them again every SADTALKER_MODEL_RELOAD_S seconds.")
        try:
            from sadtalker.pipeline import Pipeline
        except ImportError as e:
            raise ModelsUnavailable(f"the sadtalker model package cannot be imported: {e}") from e
        options = {"precision": "fp16" if half else precision, "sizes": sizes, "enhancer": enhancer,
                   "compile": compile_models}
        if "," in device:
            from sadtalker.split import SplitPipeline

            pipeline = SplitPipeline.load(checkpoint_dir, device.split(","), min_segment_frames=min_segment_frames,
                                          **options)
        else:
            pipeline = Pipeline.load(checkpoint_dir, device=device, **options)
        pipeline.warm_up()
        return PipelineRenderer(pipeline)

    return load


def missing_checkpoints(checkpoint_dir: Path, sizes: tuple[int, ...]) -> list[str]:
    """The checkpoint files the pipeline still needs ([] when ready); an import failure is reported as one."""
    try:
        from sadtalker.pipeline import missing_checkpoints as missing
    except ImportError as e:
        return [f"(the sadtalker model package cannot be imported: {e})"]
    return [entry.split(" (")[0] for entry in missing(checkpoint_dir, sizes)]


def resolve_devices(device_setting: str, workers: int) -> list[str]:
    """SADTALKER_DEVICE + SADTALKER_WORKERS -> one device name per worker.

    auto: every visible GPU (cuda:0..N-1), else cpu. workers=0: one per device; otherwise that many workers
    spread round-robin over the devices.
    """
    entries = [entry.strip() for entry in device_setting.split(",") if entry.strip()] or ["auto"]
    devices: list[str] = []
    for entry in entries:
        if entry in ("auto", "cuda"):
            import torch

            count = torch.cuda.device_count()
            if count == 0 and entry == "cuda":
                raise ModelsUnavailable("SADTALKER_DEVICE=cuda but no GPU is visible")
            devices += [f"cuda:{i}" for i in range(count)] or ["cpu"]
        else:
            devices.append(entry)
    if workers > 0:
        devices = [devices[i % len(devices)] for i in range(workers)]
    return devices


def spanning_worker(devices: list[str]) -> list[str]:
    """SADTALKER_SPLIT_DEVICES: one worker whose device is every worker device, comma-separated (a device
    listed twice holds two replicas)."""
    return [",".join(devices)]
