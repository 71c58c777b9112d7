"""The render contract between the job manager and whatever produces the video (CONTRACTS.md, B).

`RenderOptions` is the one typed form of a job's options: the API validates a request into it, the job record
stores it, and the renderer receives it unchanged (its field names are the model's `GenerateOptions` names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total), called from the worker thread


@dataclass(frozen=True)
class RenderOptions:
    """Generation options of one job (validated at the API edge; ranges in api.inputs.JobOptions)."""

    preprocess: str = "crop"  # crop | extcrop | resize | full | extfull
    still: bool = False
    enhancer: str = "none"  # none | gfpgan
    size: int = 256  # 256 | 512
    pose_style: int = 0
    expression_scale: float = 1.0
    batch_size: int | None = None  # None: the renderer picks (2 on the CPU, from free memory on a GPU)
    seed: int | None = None  # None: the renderer picks one and reports it

    @classmethod
    def from_record(cls, values: Mapping[str, Any]) -> RenderOptions:
        """From a stored record; fields a newer or older version wrote that this one lacks are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in names})


@dataclass(frozen=True)
class RenderRequest:
    job_id: str
    image_path: Path
    audio_path: Path
    output_path: Path
    options: RenderOptions = field(default_factory=RenderOptions)
    ref_eyeblink: Path | None = None  # reference videos (uploaded or fetched inputs)
    ref_pose: Path | None = None


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
    """Refuses a photo without a face before a job is queued."""

    def check_face(self, image_path: Path) -> dict[str, Any]:
        """Blocking; raises an error with `code` (invalid_image, no_face_detected) or returns face info."""
        ...


@runtime_checkable
class FaceCheckSource(Protocol):
    """Optional renderer capability: a face checker with its own models (never the renderer's), built and
    then used only on the pool's face-check thread, so no model is ever touched by two threads."""

    def face_checker(self) -> FaceChecker:
        ...


RendererFactory = Callable[[str], Renderer]  # device name -> loaded, warmed-up renderer (called once per worker)
