"""Five-point POS alignment of a face crop for the 3DMM net (ARCHITECTURE §9.4).

Landmarks are y-flipped (y' = H - 1 - y), five points are taken from the 68, an affine camera is fitted to the
standard 3D template by least squares (POS), and the image is resized with PIL bicubic and cut to 224x224.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

TARGET_SIZE = 224          # recon-net input side, pixels
RESCALE_FACTOR = 102.0     # s <- 102 / POS scale

# Standard 3D five-point template (left eye, right eye, nose, left mouth, right mouth), the exact float32
# values of the reference `.mat` (derived from its 68-point template).
_LM5_3D_HEX = (
    ("-0x1.3ef6560000000p-2", "0x1.2954560000000p-2", "0x1.11fb000000000p-3"),
    ("0x1.3d3bea0000000p-2", "0x1.28ac740000000p-2", "0x1.0deaac0000000p-3"),
    ("0x1.aa714e0000000p-9", "-0x1.7a4d100000000p-5", "0x1.1ad9bc0000000p-1"),
    ("-0x1.0238aa0000000p-2", "-0x1.867dc60000000p-2", "0x1.cade900000000p-3"),
    ("0x1.fcdbd80000000p-3", "-0x1.866ee20000000p-2", "0x1.c763780000000p-3"),
)


@dataclass(frozen=True)
class Alignment:
    """image224: (224,224,3) uint8 RGB recon-net input; trans_params: [W, H, s, tx, ty] float32;
    lm224: (68,2) float64 landmarks (y-flipped frame) in the 224 crop."""

    image224: np.ndarray
    trans_params: np.ndarray
    lm224: np.ndarray | None


@lru_cache(maxsize=1)
def template_lm5() -> np.ndarray:
    """(5,3) float32 five-point 3D template (the `lm5_3d_float32_hex` rows of lm3d_template.json)."""
    return np.array([[float.fromhex(v) for v in row] for row in _LM5_3D_HEX], dtype=np.float32)


def five_points(lm68: np.ndarray) -> np.ndarray:
    """(68,2) -> (5,2): eye centres (36/39, 42/45), nose tip 30, mouth corners 48 and 54."""
    lm = np.asarray(lm68, dtype=np.float32)
    return np.stack([
        (lm[36] + lm[39]) / 2, (lm[42] + lm[45]) / 2, lm[30], lm[48], lm[54],
    ]).astype(np.float32)


def flip_y(lm: np.ndarray, height: int) -> np.ndarray:
    """Image coordinates -> the bottom-up frame the 3DMM code works in (y' = H - 1 - y)."""
    out = np.array(lm, dtype=np.float32, copy=True)
    out[:, 1] = height - 1 - out[:, 1]
    return out


def fallback_lm5(width: int, height: int) -> np.ndarray:
    """Five points used when no landmarks exist: the template's (X, Y) mapped into the image."""
    t = template_lm5()
    return np.stack([(t[:, 0] + 1) / 2 * width, (t[:, 1] + 1) / 2 * height], axis=1).astype(np.float32)


def pos(lm5: np.ndarray, lm3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares affine camera from 3D points (5,3) to image points (5,2): (t (2,), scale)."""
    n = lm5.shape[0]
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = lm3d
    a[0::2, 3] = 1
    a[1::2, 4:7] = lm3d
    a[1::2, 7] = 1
    b = np.asarray(lm5, dtype=np.float64).reshape(2 * n)
    k = np.linalg.lstsq(a, b, rcond=None)[0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3], k[7]]), float(scale)


def align_face(rgb: np.ndarray, lm5_flipped: np.ndarray, lm68_flipped: np.ndarray | None = None) -> Alignment:
    """Resize + crop `rgb` (H,W,3) uint8 to the 224 recon-net input from y-flipped five points (5,2)."""
    height, width = rgb.shape[:2]
    t, scale = pos(lm5_flipped, template_lm5().astype(np.float64))
    s = RESCALE_FACTOR / scale
    w, h = int(width * s), int(height * s)
    left = int(w / 2 - TARGET_SIZE / 2 + (t[0] - width / 2) * s)
    up = int(h / 2 - TARGET_SIZE / 2 + (height / 2 - t[1]) * s)
    image = Image.fromarray(rgb).resize((w, h), resample=Image.BICUBIC)
    image = image.crop((left, up, left + TARGET_SIZE, up + TARGET_SIZE))
    lm224 = None
    if lm68_flipped is not None:
        lm = np.asarray(lm68_flipped, dtype=np.float64)
        lm = np.stack([lm[:, 0] - t[0] + width / 2, lm[:, 1] - t[1] + height / 2], axis=1) * s
        lm224 = lm - np.array([w / 2 - TARGET_SIZE / 2, h / 2 - TARGET_SIZE / 2])
    trans = np.array([width, height, s, t[0], t[1]], dtype=np.float32)
    return Alignment(np.asarray(image, dtype=np.uint8), trans, lm224)
