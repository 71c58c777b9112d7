"""FaceAnalyzer on real photos: the dlib fallback (no official files) and the official backend's plumbing."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from sadtalker.errors import InvalidImage, NoFaceDetected
from sadtalker.face import Face, FaceAnalyzer
from sadtalker.face.detection import detect_faces


@pytest.fixture(scope="module")
def dlib_analyzer(tmp_path_factory) -> FaceAnalyzer:
    return FaceAnalyzer.load(tmp_path_factory.mktemp("no_face_files"))


def test_fallback_is_used_and_logged_without_official_files(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sadtalker.face.analyzer"):
        analyzer = FaceAnalyzer.load(tmp_path)
    assert analyzer.backend == "dlib"
    assert "dlib fallback" in caplog.text and "detection_Resnet50_Final.pth" in caplog.text


def test_dlib_finds_the_astronaut_with_sensible_landmarks(dlib_analyzer, face_rgb):
    faces = dlib_analyzer.detect(face_rgb)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 150 < x1 < x2 < 300 and 50 < y1 < y2 < 220 and faces[0].score > 0.5  # her face, not the flag
    lm = dlib_analyzer.landmarks68(face_rgb)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    assert np.array_equal(lm, dlib_analyzer.landmarks68(face_rgb, faces[0]))
    w, h = x2 - x1, y2 - y1
    assert (lm[:, 0] > x1 - 0.3 * w).all() and (lm[:, 0] < x2 + 0.3 * w).all()
    assert (lm[:, 1] > y1 - 0.3 * h).all() and (lm[:, 1] < y2 + 0.3 * h).all()
    brows, eyes, nose, mouth, chin = lm[17:27, 1].mean(), lm[36:48, 1].mean(), lm[30, 1], lm[48:68, 1].mean(), lm[8, 1]
    assert brows < eyes < nose < mouth < chin
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()  # image-left eye first
    five = faces[0].landmarks5
    assert five.shape == (5, 2) and five[0, 0] < five[1, 0] and five[2, 1] < five[3, 1]


def test_no_face_on_the_coffee_cup(dlib_analyzer, noface_rgb):
    assert dlib_analyzer.detect(noface_rgb) == []
    with pytest.raises(NoFaceDetected) as e:
        dlib_analyzer.landmarks68(noface_rgb)
    assert e.value.code == "no_face_detected"


def test_largest_face_wins(dlib_analyzer, face_rgb):
    big = cv2.resize(face_rgb, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((big.shape[0], face_rgb.shape[1] + big.shape[1], 3), np.uint8)
    canvas[:face_rgb.shape[0], :face_rgb.shape[1]] = face_rgb
    canvas[:, face_rgb.shape[1]:] = big
    faces = dlib_analyzer.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] > face_rgb.shape[1]
    assert dlib_analyzer.landmarks68(canvas)[:, 0].min() > face_rgb.shape[1]


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((10, 10, 4), np.uint8), np.zeros((1, 5, 3), np.uint8)])
def test_bad_images_are_refused(dlib_analyzer, bad):
    with pytest.raises(InvalidImage):
        dlib_analyzer.detect(bad)


def test_official_backend_runs_the_stand_in_models(small_face_dir, face_rgb):
    analyzer = FaceAnalyzer.load(small_face_dir, device="cpu")
    assert analyzer.backend == "retinaface+fan"
    img = np.ascontiguousarray(face_rgb[::4, ::4])  # 128 px: stand-in weights give garbage boxes, fast
    faces = analyzer.detect(img, threshold=0.5)
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    by_score = analyzer.detect(img, threshold=0.5, largest_first=False)
    assert [f.score for f in by_score] == sorted((f.score for f in by_score), reverse=True)
    # the detector takes BGR; rgb_as_bgr hands it the RGB array as SadTalker's cropping pass does
    as_is = detect_faces(analyzer.detector, img[None], 0.5)[0]
    swapped = detect_faces(analyzer.detector, img[None, :, :, ::-1], 0.5)[0]
    assert [f.score for f in by_score] == [float(s) for s in swapped[:, 4]]
    quirk = analyzer.detect(img, threshold=0.5, rgb_as_bgr=True, largest_first=False)
    assert [f.score for f in quirk] == [float(s) for s in as_is[:, 4]]
    box = (10.0, 12.0, 90.0, 100.0)
    lm = analyzer.landmarks68(img, Face(box, 1.0, None))
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    assert (lm[:, 0] >= 10).all() and (lm[:, 0] <= 90).all() and (lm[:, 1] >= 12).all() and (lm[:, 1] <= 100).all()


def test_official_files_are_also_found_at_the_top_level(small_face_dir, tmp_path):
    for name in ("detection_Resnet50_Final.pth", "alignment_WFLW_4HG.pth"):
        (tmp_path / name).write_bytes((small_face_dir / "gfpgan" / "weights" / name).read_bytes())
    analyzer = FaceAnalyzer.load(tmp_path, device=torch.device("cpu"))
    assert analyzer.backend == "retinaface+fan" and str(tmp_path) in analyzer.files["detector"]
