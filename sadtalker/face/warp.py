"""Bilinear affine warp of uint8/float32 images with the float32 arithmetic of OpenCV 5's `warpAffine`.

OpenCV 4.x warps 8-bit and float32 images with 1/32-pixel fixed-point tables, OpenCV 5 in float32 (the
facemodels goldens were made with 5.0): up to 4 levels apart on 3 % of the pixels of a face crop. Doing the
warp here makes results independent of the installed OpenCV. Per output pixel (x, y), with A the
dst -> src matrix cast to float32: sx = fma(A00, x, A01·y + A02) (same for sy) in float32; ix = floor(sx),
ax = sx - ix; the four neighbours (the border value where outside the image) are blended as
v0 = fma(ax, p01 - p00, p00), v1 = fma(ax, p11 - p10, p10), v = fma(ay, v1 - v0, v0); uint8 output is
rounded half to even and saturated. fma is emulated in float64 (exact for these operands).
"""

from __future__ import annotations

import cv2
import numpy as np


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def warp_affine(src: np.ndarray, matrix: np.ndarray, dsize: tuple[int, int],
                border_value: tuple[float, ...] | float = 0.0, inverse_map: bool = False) -> np.ndarray:
    """`cv2.warpAffine(src, matrix, dsize, INTER_LINEAR, BORDER_CONSTANT, border_value)` for uint8/float32
    images (H,W) or (H,W,C); dsize = (width, height)."""
    if src.dtype not in (np.uint8, np.float32):
        raise TypeError(f"warp_affine supports uint8 and float32 images, not {src.dtype}")
    a = np.asarray(matrix, np.float64) if inverse_map else cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    img = src if src.ndim == 3 else src[:, :, None]
    h_src, w_src, channels = img.shape
    width, height = dsize
    border = np.broadcast_to(np.asarray(border_value, np.float64).ravel()[:channels] if np.ndim(border_value)
                             else np.full(channels, float(border_value)), (channels,)).astype(np.float32)
    dtype = np.uint8 if src.dtype == np.uint8 else np.float32
    out = np.empty((height, width, channels), dtype)
    out[...] = np.clip(np.rint(border), 0, 255) if dtype == np.uint8 else border
    x0, y0, x1, y1 = _touched_window(a, w_src, h_src, width, height)
    if x1 > x0 and y1 > y0:  # outside the window every neighbour is border: the output is the border value
        out[y0:y1, x0:x1] = _interpolate(img, a.astype(np.float32), border, (x0, y0, x1, y1), dtype)
    return out if src.ndim == 3 else out[:, :, 0]


def _touched_window(a: np.ndarray, w_src: int, h_src: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Output rectangle [x0,x1) x [y0,y1) whose source points can reach the image (2 px of slack)."""
    fwd = cv2.invertAffineTransform(a)
    corners = np.array([[-1, -1, 1], [w_src, -1, 1], [-1, h_src, 1], [w_src, h_src, 1]], np.float64) @ fwd.T
    x0, y0 = np.floor(corners.min(axis=0)) - 2
    x1, y1 = np.ceil(corners.max(axis=0)) + 3
    return (int(np.clip(x0, 0, width)), int(np.clip(y0, 0, height)),
            int(np.clip(x1, 0, width)), int(np.clip(y1, 0, height)))


def _interpolate(img: np.ndarray, m: np.ndarray, border: np.ndarray, window: tuple[int, int, int, int],
                 dtype: type) -> np.ndarray:
    """Bilinear samples for the output pixels of `window`, computed from their global coordinates."""
    x0, y0, x1, y1 = window
    h_src, w_src, channels = img.shape
    rows = np.arange(y0, y1, dtype=np.float32)[:, None]
    cols = np.arange(x0, x1, dtype=np.float32)[None, :]
    sx = _fma32(m[0, 0], cols, rows * m[0, 1] + m[0, 2])  # h x w; the row term is plain float32
    sy = _fma32(m[1, 0], cols, rows * m[1, 1] + m[1, 2])
    fx, fy = np.floor(sx), np.floor(sy)
    ax, ay = (sx - fx)[..., None], (sy - fy)[..., None]
    padded = np.empty((h_src + 2, w_src + 2, channels), np.float32)  # 1-px frame of the border value
    padded[...] = border
    padded[1:-1, 1:-1] = img
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)
    # indices into `padded`: anything outside the image lands on its border frame
    ix0, ix1 = np.clip(ix, -1, w_src) + 1, np.clip(ix + 1, -1, w_src) + 1
    iy0, iy1 = np.clip(iy, -1, h_src) + 1, np.clip(iy + 1, -1, h_src) + 1
    p00, p01, p10, p11 = padded[iy0, ix0], padded[iy0, ix1], padded[iy1, ix0], padded[iy1, ix1]
    v0 = _fma32(ax, p01 - p00, p00)
    v1 = _fma32(ax, p11 - p10, p10)
    v = _fma32(ay, v1 - v0, v0)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8) if dtype == np.uint8 else v
