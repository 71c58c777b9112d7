"""Paste-back into the original photo (full / extfull)."""

from __future__ import annotations

import numpy as np
import pytest

from sadtalker.pasteback import PasteTarget, paste_frames, scale_box


@pytest.fixture
def photo(rng) -> np.ndarray:
    base = np.linspace(0, 200, 160, dtype=np.float32)[None, :, None] * np.ones((120, 1, 3))
    return (base + rng.integers(0, 20, (120, 160, 3))).astype(np.uint8)


def test_output_keeps_the_photo_size_and_changes_only_the_box(photo, rng):
    frames = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    out = paste_frames(frames, PasteTarget(photo, (40, 30, 100, 90)))
    assert out.shape == (3, 120, 160, 3) and out.dtype == np.uint8
    changed = np.argwhere((out[0] != photo).any(axis=-1))
    assert changed.size
    assert changed[:, 0].min() >= 30 and changed[:, 0].max() < 90
    assert changed[:, 1].min() >= 40 and changed[:, 1].max() < 100
    assert not np.array_equal(out[0], out[1])   # every frame is blended on its own


def test_blended_face_follows_the_frame_content(photo):
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, 32:] = 255   # dark left half, bright right half
    out = paste_frames(frame[None], PasteTarget(photo, (40, 30, 100, 90)))[0].astype(int)
    assert out[60, 85].mean() - out[60, 52].mean() > 100


@pytest.mark.parametrize("box", [(-20, -10, 60, 70), (120, 80, 200, 150), (0, 0, 160, 120)])
def test_boxes_touching_or_leaving_the_photo_are_clipped(photo, rng, box):
    frames = rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    assert paste_frames(frames, PasteTarget(photo, box)).shape == (1, 120, 160, 3)


def test_box_outside_the_photo_is_refused(photo):
    with pytest.raises(ValueError, match="outside"):
        paste_frames(np.zeros((1, 8, 8, 3), np.uint8), PasteTarget(photo, (300, 300, 400, 400)))


def test_shrunk_boxes_are_scaled_back():
    assert scale_box((10, 20, 110, 220), 3) == (30, 60, 330, 660)
