"""Preprocessing: crop-box math and alignment against golden i, image decoding, the five crop modes."""

from __future__ import annotations

import numpy as np
import pytest

from sadtalker.conformance.core import CaseContext
from sadtalker.conformance.preprocess_cases import crop_and_align
from sadtalker.crop import MODES, crop_box, output_size
from sadtalker.errors import InvalidImage
from sadtalker.preprocess import crop_source, landmarks_in_crop, read_image


@pytest.fixture(scope="module")
def golden_i(reference_dir) -> dict:
    with np.load(reference_dir / "sadtalker" / "golden" / "i_crop_and_align.npz") as data:
        return {k: data[k] for k in data.files}


def test_crop_math_and_alignment_match_golden_i(golden_i, reference_dir):
    results = crop_and_align(golden_i, CaseContext.open(reference_dir / "sadtalker" / "golden"))
    cases = {k.split("_")[0] for k in golden_i if k.startswith("case")}
    assert len(results) >= 6 * len(cases) + 8
    failed = [(r.case, r.max_abs, r.note) for r in results if not r.passed]
    assert not failed


def test_crop_box_integers_are_exact(golden_i):
    cases = sorted({k.split("_")[0] for k in golden_i if k.startswith("case")})
    for case in cases:
        box = crop_box(golden_i[f"{case}_lm68"], tuple(int(v) for v in golden_i[f"{case}_image_wh"]))
        assert box.crop == tuple(golden_i[f"{case}_crop"])
        assert box.tight_box == tuple(golden_i[f"{case}_crop_mode_box"])
        assert box.info_size == tuple(golden_i[f"{case}_crop_info_size"])


def test_tall_image_keeps_the_width_clamp_quirk(golden_i):
    """Golden case 3 (300x900): ry is clamped to the image *width*, although the crop is taller."""
    box = crop_box(golden_i["case3_lm68"], (300, 900))
    crop_height = box.crop[3] - box.crop[1]
    assert box.quad[3] == 300.0 < crop_height
    assert box.info_size == (300, 300 - int(box.quad[1]))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_a_square_source_and_an_output_aspect(golden_i, mode):
    lm = golden_i["case0_lm68"]
    rgb = np.zeros((480, 640, 3), np.uint8)
    crop, box, info = crop_source(rgb, lm, mode, 256)
    assert crop.shape == (256, 256, 3)
    assert (box is None) == (mode == "resize")
    expected_info = (640, 480) if mode == "resize" else tuple(golden_i["case0_crop_info_size"])
    assert info == expected_info
    width, height = output_size(256, info)
    assert width == 256 and height == int(256 * info[1] / info[0])


@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize"])
def test_landmarks_map_into_the_crop(golden_i, mode):
    """A marker drawn at a landmark of the photo is found at the mapped landmark in the crop."""
    lm = golden_i["case0_lm68"]
    rgb = np.zeros((480, 640, 3), np.uint8)
    x, y = (int(round(v)) for v in lm[30])
    rgb[y - 6:y + 7, x - 6:x + 7] = 255
    crop, box, _ = crop_source(rgb, lm, mode, 256)
    mapped = landmarks_in_crop(lm, box, mode, (640, 480), 256)
    mx, my = (int(round(v)) for v in mapped[30])
    assert crop[my, mx].min() > 200


def test_read_image_decodes_content_not_names(tmp_path, face_png, face_jpg):
    png = read_image(face_png)
    assert png.shape == (512, 512, 3) and png.dtype == np.uint8
    misnamed = tmp_path / "photo.png"
    misnamed.write_bytes(face_jpg.read_bytes())   # a JPEG named .png
    assert read_image(misnamed).shape == (512, 512, 3)
    assert np.abs(read_image(misnamed).astype(int) - png).mean() < 5   # same picture, RGB order


@pytest.mark.parametrize("content", [b"", b"GIF89a not really", b"\x89PNG\r\n\x1a\n" + b"\0" * 64])
def test_unreadable_images_are_invalid_image(tmp_path, content):
    path = tmp_path / "face.jpg"
    path.write_bytes(content)
    with pytest.raises(InvalidImage) as info:
        read_image(path)
    assert info.value.code == "invalid_image"


def test_missing_and_tiny_images_are_invalid_image(tmp_path):
    import cv2

    with pytest.raises(InvalidImage, match="cannot read"):
        read_image(tmp_path / "nope.png")
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InvalidImage, match="sides"):
        read_image(tiny)


def test_grayscale_and_alpha_images_become_rgb(tmp_path):
    from PIL import Image

    gray, rgba = tmp_path / "g.png", tmp_path / "a.webp"
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(gray)
    Image.fromarray(np.full((64, 64, 4), 90, np.uint8)).save(rgba)
    assert read_image(gray).shape == (64, 64, 3)
    assert read_image(rgba).shape == (64, 64, 3)


def test_shrunk_photo_paste_box_is_scaled_back_onto_the_face(golden_i):
    """Golden case 1 (3000x2000, shrink 2): the full-mode paste box, in original pixels, covers the face."""
    from sadtalker.crop import paste_box
    from sadtalker.pasteback import scale_box

    lm = golden_i["case1_lm68"]
    box = crop_box(lm, (3000, 2000))
    assert box.shrink == 2 and box.rsize == (1500, 1000)
    for mode in ("full", "extfull"):
        x1, y1, x2, y2 = scale_box(paste_box(box, mode), box.shrink)
        eyes_and_mouth = lm[36:68]
        assert x1 <= eyes_and_mouth[:, 0].min() and eyes_and_mouth[:, 0].max() <= x2
        assert y1 <= eyes_and_mouth[:, 1].min() and eyes_and_mouth[:, 1].max() <= y2


def test_official_detector_gets_the_reference_channel_swap(tmp_path, reference_dir, face_png):
    """With the RetinaFace files present, the cropping pass hands the photo over as the reference does (RGB
    taken as BGR). Stand-in weights detect noise, but noise that depends on the channel order."""
    from sadtalker.face import FaceAnalyzer
    from sadtalker.face.standin import write_face_standins
    from sadtalker.preprocess import detect_for_crop, largest_face

    write_face_standins(tmp_path / "gfpgan" / "weights", reference_dir, small=True)
    analyzer = FaceAnalyzer.load(tmp_path, device="cpu")
    assert analyzer.backend == "retinaface+fan"
    rgb = read_image(face_png)[:256, 128:384]   # smaller image: fewer stand-in detections to sort
    swapped, plain = analyzer.detect(rgb, rgb_as_bgr=True), analyzer.detect(rgb)
    assert [f.box for f in swapped] != [f.box for f in plain]
    assert detect_for_crop(analyzer, rgb).box == largest_face(swapped).box
