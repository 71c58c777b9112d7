"""The production renderer: `sadtalker.pipeline.Pipeline` behind the jobs `Renderer` protocol.

`sadtalker` (and torch) are imported only when a worker loads, so importing the app stays cheap and a
missing model package shows up in /readyz instead of failing the process.
"""

from __future__ import annotations

import glob
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jobs import FaceChecker, Renderer, RendererFactory, RenderRequest, RenderResult
from jobs.errors import ModelsUnavailable

log = logging.getLogger(__name__)


class PipelineRenderer:
    """One loaded, warmed-up Pipeline on one device."""

    def __init__(self, pipeline: Any, face_dirs: list[Path] | None = None):
        self.pipeline = pipeline
        self.face_dirs = face_dirs  # where the pipeline's face files were found (the face checker loads its own)

    def render(self, request: RenderRequest, progress: Callable[[str, int, int], None],
               should_cancel: Callable[[], bool]) -> RenderResult:
        from sadtalker.pipeline import GenerateOptions

        options = GenerateOptions(**asdict(request.options), ref_eyeblink=request.ref_eyeblink,
                                  ref_pose=request.ref_pose)
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

    def capabilities(self) -> dict[str, list[Any]]:
        """What this pipeline has loaded: sizes, enhancers (GFPGAN only when its weights loaded), crop modes."""
        from sadtalker.crop import MODES

        enhancers = ["none", "gfpgan"] if self.pipeline.enhancer is not None else ["none"]
        return {"sizes": sorted(self.pipeline.models), "enhancers": enhancers, "preprocess": list(MODES)}

    def face_checker(self) -> FaceChecker:
        """A checker with its own face detector on this pipeline's device (the worker's is never shared)."""
        from sadtalker.face import FaceAnalyzer
        from sadtalker.pipeline import Pipeline

        pipeline = self.pipeline
        device = pipeline.device.split(",")[0]  # a SplitPipeline's first device
        analyzer = FaceAnalyzer.load(pipeline.checkpoint_dir, device=device, face_dirs=self.face_dirs)
        return PipelineFaceChecker(Pipeline(pipeline.checkpoint_dir, {}, analyzer, None, [], device))


class PipelineFaceChecker:
    """`Pipeline.find_face` of a pipeline that holds only a face analyzer (no renderer models)."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def check_face(self, image_path: Path) -> dict[str, Any]:
        info = self.pipeline.find_face(image_path)
        return {"box": list(info.box), "score": info.score, "detector": info.detector, "faces": info.faces}


def pipeline_renderer_factory(checkpoint_dir: Path, *, sizes: tuple[int, ...] = (256,), half: bool = False,
                              enhancer: bool = True, face_dirs: list[Path] | None = None, precision: str = "fp32",
                              compile_models: bool = False, min_segment_frames: int = 125) -> RendererFactory:
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
                   "compile": compile_models, "face_dirs": face_dirs}
        if "," in device:
            from sadtalker.split import SplitPipeline

            pipeline = SplitPipeline.load(checkpoint_dir, device.split(","), min_segment_frames=min_segment_frames,
                                          **options)
        else:
            pipeline = Pipeline.load(checkpoint_dir, device=device, **options)
        pipeline.warm_up()
        return PipelineRenderer(pipeline, face_dirs)

    return load


def missing_checkpoints(checkpoint_dir: Path, sizes: tuple[int, ...]) -> list[str]:
    """The checkpoint files the pipeline still needs ([] when ready); an import failure is reported as one."""
    try:
        from sadtalker.pipeline import missing_checkpoints as missing
    except ImportError as e:
        return [f"(the sadtalker model package cannot be imported: {e})"]
    return [entry.split(" (")[0] for entry in missing(checkpoint_dir, sizes)]


class GpuUnusable(RuntimeError):
    """A GPU is visible but torch cannot use it: on SADTALKER_DEVICE=auto the service would silently render on
    the CPU and run every job into its timeout, so it refuses to start."""

    code = "gpu_unusable"


def visible_gpu(cuda_visible_devices: str | None) -> str | None:
    """Evidence that this machine exposes an NVIDIA GPU to us (nvidia-smi lists one, or a /dev/nvidiaN device
    exists), unless CUDA_VISIBLE_DEVICES hides every device; None when none is visible."""
    if cuda_visible_devices is not None and cuda_visible_devices.strip() in ("", "-1", "none", "NoDevFiles"):
        return None
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            listed = None
        gpus = [line for line in (listed.stdout.splitlines() if listed and listed.returncode == 0 else [])
                if line.startswith("GPU ")]
        if gpus:
            return f"nvidia-smi lists {gpus[0].strip()}"
    devices = sorted(glob.glob("/dev/nvidia[0-9]*"))
    return f"{devices[0]} exists" if devices else None


def refuse_unusable_gpu(device_setting: str, cuda_visible_devices: str | None) -> None:
    """Raise GpuUnusable when SADTALKER_DEVICE is auto, a GPU is visible and torch cannot use it."""
    entries = [entry.strip() for entry in device_setting.split(",") if entry.strip()] or ["auto"]
    if "auto" not in entries:
        return
    import torch

    if torch.cuda.is_available():
        return
    evidence = visible_gpu(cuda_visible_devices)
    if evidence:
        raise GpuUnusable(
            f"a GPU is visible ({evidence}) but torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}) "
            "cannot use it: the NVIDIA driver may be older than this torch build needs (the CUDA 13 wheels of "
            "torch 2.13 need driver >= 580), or torch is a CPU build. Fix the driver or torch, or set "
            "SADTALKER_DEVICE=cpu to render on the CPU on purpose.")


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
