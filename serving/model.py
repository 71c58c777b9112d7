"""One warm model per serverless process, and what a render reports.

The model is the API's production renderer (`api.renderer.pipeline_renderer_factory`: `Pipeline.load` plus a
warm-up). As in the API's worker pool, it is built and used in one thread of its own, so its GPU state is only
ever touched by that thread and an event loop never blocks on a render.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from api.errors import ApiError
from api.renderer import pipeline_renderer_factory, resolve_devices
from jobs.models import STAGE_WEIGHTS, stage_percent
from jobs.render import RenderOptions, RenderRequest, RenderResult

log = logging.getLogger(__name__)
ProgressFn = Callable[[str, int, int], None]


class ModelRunner:
    """Loads the renderer once (`load`) and runs every render (`render`) in the same, single thread."""

    def __init__(self, checkpoint_dir: Path, *, device: str = "auto", precision: str = "fp32",
                 sizes: tuple[int, ...] = (256,), enhancer: bool = True, face_dirs: list[Path] | None = None):
        self.checkpoint_dir = Path(checkpoint_dir)
        self._device_setting = device
        self._factory = pipeline_renderer_factory(self.checkpoint_dir, sizes=sizes, precision=precision, enhancer=enhancer,
                                                  face_dirs=face_dirs)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._lock = threading.Lock()
        self._loading: Future | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ModelRunner:
        return cls(settings.sadtalker_checkpoint_dir, device=settings.sadtalker_device, precision=settings.precision,
                   sizes=settings.preload_sizes, enhancer=settings.sadtalker_enhancer,
                   face_dirs=settings.face_weight_dirs)

    def load(self) -> Future:
        """Starts loading once; the future holds the renderer. A failed load (files missing) is tried again by
        the next call, so checkpoints added to a volume later are picked up."""
        with self._lock:
            if self._loading is None or (self._loading.done() and self._loading.exception() is not None):
                self._loading = self._thread.submit(self._build)
            return self._loading

    def _build(self) -> Any:
        device = resolve_devices(self._device_setting, 1)[0]
        log.info("loading the model from %s on %s", self.checkpoint_dir, device)
        return self._factory(device)

    def render(self, files: Mapping[str, Path], options: Mapping[str, Any], out_path: Path, *,
               progress: ProgressFn | None = None, job_id: str = "serverless") -> Future:
        """Queues one render on the model thread; the future holds a `RenderResult`."""
        loading = self.load()
        refs = {name: Path(files[name]) for name in ("ref_eyeblink", "ref_pose") if files.get(name)}
        request = RenderRequest(job_id, Path(files["image"]), Path(files["audio"]), Path(out_path),
                                RenderOptions.from_record(options), **refs)
        return self._thread.submit(self._render, loading, request, progress or (lambda *_: None))

    @staticmethod
    def _render(loading: Future, request: RenderRequest, progress: ProgressFn) -> RenderResult:
        renderer = loading.result()  # done: it ran earlier in this same thread
        return renderer.render(request, progress, lambda: False)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def result_facts(result: RenderResult, size_bytes: int) -> dict[str, Any]:
    """The job result's facts for a finished render (the API's `result` without storage fields)."""
    return {"duration_s": round(result.duration_s, 3), "frames": result.frames, "width": result.width,
            "height": result.height, "bytes": size_bytes, "face_detector": result.info.get("face_detector"),
            "seed": result.info.get("seed")}


def progress_update(stage: str, done: int, total: int) -> dict[str, Any]:
    """The job's progress shape for one pipeline callback: stage, overall percent, frames for the render."""
    update: dict[str, Any] = {"stage": stage, "percent": stage_percent(stage, done, total) if stage in STAGE_WEIGHTS
                              else None}
    if stage == "render":
        update.update(frames_done=done, frames_total=total)
    return update


def error_of(exc: BaseException) -> dict[str, str]:
    """{code, message} for any failure: the stable `code` the API uses, `render_failed` for the unexpected."""
    if isinstance(exc, ApiError):
        return {"code": exc.code, "message": exc.message}
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return {"code": code, "message": str(exc) or code}
    return {"code": "render_failed", "message": f"{type(exc).__name__}: {exc}"}
