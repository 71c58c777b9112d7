"""Paste rendered face frames back into the original photo for `full` / `extfull` (ARCHITECTURE §10).

Each frame is resized to its box and Poisson-blended (`cv2.seamlessClone`, NORMAL_CLONE, all-255 mask) into
the unresized original, so the video keeps the photo's size. Poisson blending treats channels independently,
so working in RGB gives the same pixels as the reference's BGR. `paste_frames_device` does the same on the
pipeline's device for a whole batch (the same Poisson equation solved by a sine transform, `imageops`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from . import imageops


@dataclass(frozen=True)
class PasteTarget:
    """Where frames go: the original photo (H,W,3) uint8 RGB and the box (x1, y1, x2, y2) in its pixels."""

    photo: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the output frames: the photo's."""
        return self.photo.shape[1], self.photo.shape[0]


def scale_box(box: tuple[int, int, int, int], factor: int) -> tuple[int, int, int, int]:
    """A box found in a shrunk image (§9.3) in the coordinates of the original one."""
    x1, y1, x2, y2 = box
    return x1 * factor, y1 * factor, x2 * factor, y2 * factor


def _visible(frame: np.ndarray, box: tuple[int, int, int, int], width: int, height: int):
    """The part of `frame` (already box-sized) inside the photo, and its clipped box."""
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if cx2 - cx1 < 3 or cy2 - cy1 < 3:
        raise ValueError(f"paste box {box} lies outside the {width}x{height} photo")
    return frame[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1], (cx1, cy1, cx2, cy2)


def paste_frame(frame: np.ndarray, target: PasteTarget) -> np.ndarray:
    """One rendered frame (h,w,3) uint8 -> the photo with the face blended in, (H,W,3) uint8."""
    x1, y1, x2, y2 = target.box
    patch = cv2.resize(frame, (x2 - x1, y2 - y1))
    width, height = target.size
    patch, (x1, y1, x2, y2) = _visible(patch, target.box, width, height)
    mask = np.full(patch.shape[:2], 255, dtype=np.uint8)
    center = ((x1 + x2) // 2, (y1 + y2) // 2)
    return cv2.seamlessClone(np.ascontiguousarray(patch), target.photo, mask, center, cv2.NORMAL_CLONE)


def paste_frames(frames: np.ndarray, target: PasteTarget) -> np.ndarray:
    """(n,h,w,3) uint8 frames -> (n,H,W,3) uint8 frames of the photo's size."""
    return np.stack([paste_frame(frame, target) for frame in frames])


def paste_frames_device(frames: torch.Tensor, target: PasteTarget, photo: torch.Tensor | None = None) -> torch.Tensor:
    """`paste_frames` on the frames' device: (n,3,h,w) 0..255 floats -> (n,3,H,W), the photo's size.

    photo: the target photo as a (1,3,H,W) float tensor on that device (uploaded here when not given).
    """
    if photo is None:
        photo = torch.from_numpy(target.photo).to(frames.device).permute(2, 0, 1)[None].to(frames.dtype)
    x1, y1, x2, y2 = target.box
    width, height = target.size
    patch = imageops.resize_bilinear(frames, (x2 - x1, y2 - y1))
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if cx2 - cx1 < 3 or cy2 - cy1 < 3:
        raise ValueError(f"paste box {target.box} lies outside the {width}x{height} photo")
    patch = patch[..., cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
    # seamlessClone drops the outer 1-px frame of an all-255 mask; the region is centred back on the box
    region = (slice(cy1 + 1, cy2 - 1), slice(cx1 + 1, cx2 - 1))
    dst = photo[..., region[0], region[1]].expand(len(frames), -1, -1, -1)
    out = photo.expand(len(frames), -1, -1, -1).clone()
    out[..., region[0], region[1]] = imageops.poisson_clone(dst, patch[..., 1:-1, 1:-1])
    return out
