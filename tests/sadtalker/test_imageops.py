"""The device post-processing (torch, run here on CPU tensors) against the numpy/OpenCV reference path.

Tolerances are those stated in docs/performance.md ("Post-processing on the device").
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from sadtalker import imageops
from sadtalker.face.warp import warp_affine as reference_warp
from sadtalker.pasteback import PasteTarget, paste_frames, paste_frames_device


def as_tensor(images: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) or (H,W,3) uint8 -> (N,3,H,W) float32 0..255."""
    images = images if images.ndim == 4 else images[None]
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return imageops.to_host_uint8(x)


def off_by(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(largest difference in levels, share of values that differ)."""
    diff = np.abs(a.astype(int) - b.astype(int))
    return int(diff.max()), float((diff > 0).mean())


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[60:300, 120:330])   # 240 x 210, a real face


@pytest.mark.parametrize("size", [(256, 293), (97, 130), (420, 400)])
def test_bilinear_resize_reproduces_opencv_fixed_point(face, size):
    worst, share = off_by(as_uint8(imageops.resize_bilinear(as_tensor(face), size))[0], cv2.resize(face, size))
    assert worst <= 1 and share <= 0.002


def test_lanczos_2x_is_bit_exact(face, rng):
    noise = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for image in (face, noise):
        h, w = image.shape[:2]
        ref = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LANCZOS4)
        np.testing.assert_array_equal(as_uint8(imageops.upscale2x_lanczos(as_tensor(image)))[0], ref)


def test_affine_warp_with_border_matches_the_reference_warp(face):
    m = cv2.getRotationMatrix2D((100, 120), 17.0, 1.3)
    ours = as_uint8(imageops.warp_affine(as_tensor(face), m[None], (512, 512), (135, 133, 132)))[0]
    worst, share = off_by(ours, reference_warp(face, m, (512, 512), (135, 133, 132)))
    assert worst <= 1 and share <= 1e-4
    assert (ours[-1, -1] == [135, 133, 132]).all()   # outside the image: the border value


def test_fixed_point_mask_warp_equals_opencv_float64(rng):
    mask = cv2.GaussianBlur(rng.random((64, 64)), (15, 15), 3)
    m = np.float64([[2.1, 0.3, 10.2], [-0.25, 1.9, 30.7]])
    ours = imageops.warp_affine_fixed(torch.from_numpy(mask)[None, None], m[None], (200, 180))[0, 0].numpy()
    np.testing.assert_allclose(ours, cv2.warpAffine(mask, m, (200, 180)), atol=1e-12)


def test_gaussian_blur_matches_opencv(rng):
    mask = (rng.random((1, 1, 200, 180)) > 0.5) * 255.0
    ours = imageops.gaussian_blur(torch.from_numpy(mask), 101, 11)[0, 0].numpy()
    np.testing.assert_allclose(ours, cv2.GaussianBlur(mask[0, 0], (101, 101), 11), atol=1e-9)


@pytest.mark.parametrize("box", [(100, 50, 227, 190), (101, 51, 228, 189), (-20, -10, 60, 70), (0, 0, 400, 300)])
def test_poisson_paste_back_matches_seamless_clone(face, box):
    photo = np.ascontiguousarray(data.coffee()[:300, :400])
    frames = np.stack([face[:200, :200], face[20:220, 10:210]])
    target = PasteTarget(photo, box)
    ours = as_uint8(paste_frames_device(as_tensor(frames), target))
    worst, share = off_by(ours, paste_frames(frames, target))
    assert worst <= 1 and share <= 0.01
    assert not np.array_equal(ours[0], ours[1])


def test_paste_box_outside_the_photo_is_refused():
    photo = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        paste_frames_device(torch.zeros(1, 3, 8, 8), PasteTarget(photo, (300, 300, 400, 400)))


def test_frames_leave_as_uint8_rgb():
    x = torch.tensor([[[[-3.0, 300.0]], [[7.0, 8.0]], [[9.0, 254.0]]]])   # 1 x 3 x 1 x 2
    out = imageops.to_host_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 2, 3)
    assert out[0, 0].tolist() == [[0, 7, 9], [255, 8, 254]]
