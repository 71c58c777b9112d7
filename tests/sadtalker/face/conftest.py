"""Fixtures of the face-model tests: real photos as RGB arrays and narrow stand-in face-model files."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sadtalker.face.standin import write_face_standins

GOLDEN = "facemodels/golden"


@pytest.fixture(scope="session")
def face_rgb(face_png) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(face_png)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def noface_rgb(noface_png) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(noface_png)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def golden(reference_dir):
    """Loader of a facemodels golden file by stem: golden("g_pasteback") -> dict of arrays."""

    def load(stem: str) -> dict[str, np.ndarray]:
        with np.load(reference_dir / GOLDEN / f"{stem}.npz") as data:
            return {k: data[k] for k in data.files}

    return load


@pytest.fixture(scope="session")
def small_face_dir(tmp_path_factory, reference_dir) -> Path:
    """A checkpoint dir with the four small stand-in face files under gfpgan/weights/."""
    root = tmp_path_factory.mktemp("small_faces")
    write_face_standins(root / "gfpgan" / "weights", reference_dir, small=True)
    return root


@pytest.fixture(scope="session")
def enhancer_only_dir(tmp_path_factory, small_face_dir) -> Path:
    """Only GFPGAN + ParseNet (small): the detector falls back to dlib, which finds real faces."""
    root = tmp_path_factory.mktemp("enhancer_only")
    for name in ("GFPGANv1.4.pth", "parsing_parsenet.pth"):
        shutil.copy(small_face_dir / "gfpgan" / "weights" / name, root / name)
    return root
