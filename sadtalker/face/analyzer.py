"""FaceAnalyzer: face boxes, 5 and 68 landmarks, from the official RetinaFace + FAN files or the dlib fallback."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidImage, NoFaceDetected
from .constants import DETECT_THRESHOLD
from .detection import detect_faces, detect_faces_device
from .fallback import DlibFaces, five_points
from .fan import FAN
from .landmarks import box_landmarks68
from .retinaface import RetinaFace
from .weights import (
    DETECTOR_FILE,
    LANDMARK_FILE,
    detector_state,
    face_dirs_of,
    find_face_file,
    landmark_state,
    load_network,
)

log = logging.getLogger(__name__)

OFFICIAL_BACKEND = "retinaface+fan"
FALLBACK_BACKEND = "dlib"


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels (not clipped to the image)
    score: float                            # RetinaFace probability, or dlib's HOG score
    landmarks5: np.ndarray | None           # (5,2) float32: eyes (image left, right), nose, mouth corners

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_rgb(image: np.ndarray, batched: bool = False) -> np.ndarray:
    ndim = 4 if batched else 3
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != ndim or image.shape[-1] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InvalidImage(f"expected uint8 RGB {'(N,H,W,3)' if batched else '(H,W,3)'} pixels, got {got}")
    if min(image.shape[-3:-1]) < 2:
        raise InvalidImage(f"image of {image.shape[-2]}x{image.shape[-3]} px is too small")
    return image


class FaceAnalyzer:
    """Detector + 68-point landmarks. `backend` is "retinaface+fan" or "dlib" (fallback)."""

    def __init__(self, backend: str, *, detector: RetinaFace | None = None, fan: FAN | None = None,
                 dlib_faces: DlibFaces | None = None, files: dict[str, str] | None = None):
        self.backend = backend
        self.detector, self.fan, self.dlib_faces = detector, fan, dlib_faces
        self.files = files or {}

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str | torch.device | None = None,
             face_dirs: Sequence[Path] | None = None) -> FaceAnalyzer:
        """Official files from `face_dirs` (default: `checkpoint_dir` and its `gfpgan/weights/`); without both,
        the dlib fallback."""
        det_path = find_face_file(Path(checkpoint_dir), DETECTOR_FILE, face_dirs)
        fan_path = find_face_file(Path(checkpoint_dir), LANDMARK_FILE, face_dirs)
        if det_path and fan_path:
            dev = pick_device(device)
            detector = load_network(RetinaFace, det_path, detector_state, dev)
            fan = load_network(FAN, fan_path, landmark_state, dev)
            return cls(OFFICIAL_BACKEND, detector=detector, fan=fan,
                       files={"detector": str(det_path), "landmarks": str(fan_path)})
        missing = [n for n, p in ((DETECTOR_FILE, det_path), (LANDMARK_FILE, fan_path)) if p is None]
        where = ", ".join(str(d) for d in face_dirs_of(Path(checkpoint_dir), face_dirs))
        log.warning("face models %s not found in %s: using the dlib fallback, whose detections and landmarks "
                    "differ from the official models", ", ".join(missing), where)
        return cls(FALLBACK_BACKEND, dlib_faces=DlibFaces.load())

    def detect(self, rgb: np.ndarray, threshold: float = DETECT_THRESHOLD, *, rgb_as_bgr: bool = False,
               largest_first: bool = True) -> list[Face]:
        """Faces in an (H,W,3) uint8 RGB image, largest box first (or detector order: best score first).

        rgb_as_bgr: give the RGB array to RetinaFace as if it were BGR, as SadTalker's cropping pass does
        (SPEC §7; the means are then subtracted from the wrong channels). threshold applies to RetinaFace
        scores (strict >); the dlib fallback has its own score floor.
        """
        check_rgb(rgb)
        return self.detect_batch(rgb[None], threshold, rgb_as_bgr=rgb_as_bgr, largest_first=largest_first)[0]

    def detect_batch(self, frames: np.ndarray, threshold: float = DETECT_THRESHOLD, *, rgb_as_bgr: bool = False,
                     largest_first: bool = True) -> list[list[Face]]:
        """`detect` for (N,H,W,3) same-size RGB frames; RetinaFace runs them in one forward."""
        check_rgb(frames, batched=True)
        if self.backend == OFFICIAL_BACKEND:
            images = frames if rgb_as_bgr else frames[..., ::-1]
            rows = detect_faces(self.detector, images, threshold)
            faces = [[Face(tuple(float(v) for v in r[:4]), float(r[4]), r[5:15].reshape(5, 2).copy())
                      for r in dets] for dets in rows]
        else:
            faces = [self._dlib_detect(f) for f in frames]
        if largest_first:
            faces = [sorted(fs, key=lambda f: -f.area) for fs in faces]  # stable: score order among equals
        return faces

    def detect_batch_device(self, frames: torch.Tensor, threshold: float = DETECT_THRESHOLD, *,
                            largest_first: bool = True) -> list[list[Face]]:
        """`detect_batch` for (N,3,H,W) 0..255 RGB tensors: RetinaFace runs on their device and only its
        candidates come back; the dlib fallback (CPU only) takes one uint8 copy of the batch."""
        if self.backend != OFFICIAL_BACKEND:
            host = frames.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
            return self.detect_batch(host, threshold, largest_first=largest_first)
        rows = detect_faces_device(self.detector, frames.flip(1), threshold)
        faces = [[Face(tuple(float(v) for v in r[:4]), float(r[4]), r[5:15].reshape(5, 2).copy())
                  for r in dets] for dets in rows]
        return [sorted(fs, key=lambda f: -f.area) for fs in faces] if largest_first else faces

    def _dlib_detect(self, rgb: np.ndarray) -> list[Face]:
        found = self.dlib_faces.detect(rgb)
        return [Face(box, score, five_points(self.dlib_faces.landmarks68(rgb, box))) for box, score in found]

    def landmarks68(self, rgb: np.ndarray, face: Face | None = None, *, rgb_as_bgr: bool = False) -> np.ndarray:
        """(68,2) float32 pixel landmarks of `face`, or of the largest detected face; NoFaceDetected if none.

        With the official models: FAN on the crop int(y1):int(y2), int(x1):int(x2) of the RGB image, 98 -> 68
        (SPEC §3, §7). rgb_as_bgr is passed to `detect` when no face is given.
        """
        check_rgb(rgb)
        if face is None:
            faces = self.detect(rgb, rgb_as_bgr=rgb_as_bgr)
            if not faces:
                raise NoFaceDetected(f"no face found in the {rgb.shape[1]}x{rgb.shape[0]} image "
                                     f"(detector: {self.backend})")
            face = faces[0]
        if self.backend == OFFICIAL_BACKEND:
            try:
                return box_landmarks68(self.fan, rgb, face.box)
            except ValueError as e:
                raise NoFaceDetected(f"face box {face.box} lies outside the image: {e}") from e
        return self.dlib_faces.landmarks68(rgb, face.box)
