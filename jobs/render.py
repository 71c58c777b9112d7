"""The render contract between the job manager and whatever produces the video (CONTRACTS.md, B)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total), called from the worker thread


@dataclass(frozen=True)
class RenderRequest:
    job_id: str
    image_path: Path
    audio_path: Path
    output_path: Path
    # preprocess, still, enhancer, size, pose_style, expression_scale, batch_size,
    # ref_eyeblink (Path | None), ref_pose (Path | None), seed (int | None)
    options: dict[str, Any]


@dataclass(frozen=True)
class RenderResult:
    video_path: Path
    duration_s: float
    frames: int
    width: int
    height: int
    info: dict[str, Any] = field(default_factory=dict)  # e.g. face_detector, seed


class Renderer(Protocol):
    def render(
        self, request: RenderRequest, progress: ProgressFn, should_cancel: Callable[[], bool]
    ) -> RenderResult:
        """Blocking; runs in the worker's own thread. Errors with a `code` attribute become the job's error."""
        ...


@runtime_checkable
class FaceChecker(Protocol):
    """Optional renderer capability: refuse a photo without a face before a job is queued."""

    def check_face(self, image_path: Path) -> dict[str, Any]:
        """Blocking; raises an error with `code` (invalid_image, no_face_detected) or returns face info."""
        ...


RendererFactory = Callable[[str], Renderer]  # device name -> loaded, warmed-up renderer (called once per worker)
