"""Crop box of the source face from 68 landmarks (ARCHITECTURE §9.3) and the five crop modes (§9.1).

The box math keeps the reference's arithmetic exactly (float32 landmark means, float64 quad, the
`ry` limit taken from the image *width*), so the golden crop cases match to the pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ALIGN_OUTPUT_SIZE = 512     # `align_face` output_size: only decides the shrink factor
MODES = ("crop", "extcrop", "resize", "full", "extfull")


@dataclass(frozen=True)
class CropBox:
    """Result of the crop-box math, all in the coordinates of the (possibly shrunk) image.

    rsize: (W', H') the image is resized to first; crop: (clx, cly, crx, cry) integer box;
    quad: (lx, ly, rx, ry) float tight box inside `crop`; shrink: the integer shrink factor (1 = none).
    """

    rsize: tuple[int, int]
    crop: tuple[int, int, int, int]
    quad: tuple[float, float, float, float]
    shrink: int = 1

    @property
    def tight_box(self) -> tuple[int, int, int, int]:
        """(ox1, oy1, ox2, oy2): the quad box in image coordinates (crop / full modes)."""
        clx, cly = self.crop[0], self.crop[1]
        lx, ly, rx, ry = self.quad
        return clx + int(lx), cly + int(ly), clx + int(rx), cly + int(ry)

    @property
    def info_size(self) -> tuple[int, int]:
        """crop_info[0] = (w0, h0): decides the aspect ratio of the output video in every mode."""
        ox1, oy1, ox2, oy2 = self.tight_box
        return ox2 - ox1, oy2 - oy1


def crop_box(lm68: np.ndarray, image_wh: tuple[int, int]) -> CropBox:
    """The reference `align_face` box for landmarks (68,2) in pixels of an image of size (W, H)."""
    lm = np.asarray(lm68, dtype=np.float32)
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # Integer [-1, 1] promotes to float64 here, as in the reference.
    x = eye_to_eye - np.flipud(eye_to_mouth) * np.array([-1, 1])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * np.array([-1, 1])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])   # 4 x 2
    qsize = np.hypot(*x) * 2

    width, height = image_wh
    shrink = int(np.floor(qsize / ALIGN_OUTPUT_SIZE * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(width) / shrink)), int(np.rint(float(height) / shrink)))
        quad /= shrink
        qsize /= shrink
    else:
        rsize = (int(np.rint(float(width))), int(np.rint(float(height))))
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
            int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0),
            min(crop[2] + border, rsize[0]), min(crop[3] + border, rsize[1]))
    if crop[2] - crop[0] < rsize[0] or crop[3] - crop[1] < rsize[1]:
        quad -= crop[0:2]
    q = (quad + 0.5).flatten()   # x0 y0 x1 y1 x2 y2 x3 y3
    lx = max(min(q[0], q[2]), 0)
    ly = max(min(q[1], q[7]), 0)
    rx = min(max(q[4], q[6]), rsize[0])
    ry = min(max(q[3], q[5]), rsize[0])   # reference quirk: the y limit is the image *width*
    return CropBox(rsize, crop, (float(lx), float(ly), float(rx), float(ry)), max(shrink, 1))


def paste_box(box: CropBox, mode: str) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) where a rendered frame goes back in the (shrunk) image: §10."""
    return box.crop if mode == "extfull" else box.tight_box


def apply_crop(rgb: np.ndarray, box: CropBox, mode: str) -> np.ndarray:
    """Cut the face region of `rgb` (H,W,3) for `mode` (crop/extcrop/full/extfull); uint8 copy."""
    if rgb.shape[1] != box.rsize[0] or rgb.shape[0] != box.rsize[1]:
        rgb = cv2.resize(rgb, box.rsize)
    clx, cly, crx, cry = box.crop
    region = rgb[cly:cry, clx:crx]
    if mode in ("crop", "full"):
        lx, ly, rx, ry = box.quad
        region = region[int(ly):int(ry), int(lx):int(rx)]
    return np.ascontiguousarray(region)


def output_size(size: int, info_wh: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the rendered frames after the final resize of §8.4."""
    w0, h0 = info_wh
    return size, int(size * h0 / w0)

