"""FAN heatmaps -> 98 points -> SadTalker's 68 points (SPEC §3.1, §3.4, §7)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .constants import CENTER_OFFSET, FAN_INPUT_SIZE, LANDMARK_98_TO_68, SUBPIXEL_OFFSET
from .fan import FAN


def heatmap_points(heatmaps: np.ndarray) -> np.ndarray:
    """(B,N,H,W) heatmaps -> (B,N,2) float64 (x, y) in heatmap cells, the reference's rules exactly.

    argmax (first maximum) + 0.25·sign of the neighbour difference + 0.5. x neighbours are flat-index
    neighbours (wrapping into the adjacent row); the y rules are batch-global: if any peak lies in the last
    row every "below" value is the last cell, if any lies at flat index <= W every "above" value is cell 0.
    """
    b, n, h, w = heatmaps.shape
    flat = heatmaps.reshape(b * n, h * w)
    idx = flat.argmax(axis=1)
    rows = np.arange(b * n)
    preds = np.stack((idx % w, idx // w), axis=1).astype(np.float64)
    left = flat[rows, idx - 1]
    # a peak in the very last cell makes the reference fail (IndexError); we give it no x shift instead
    right = np.where(idx + 1 < h * w, flat[rows, np.minimum(idx + 1, h * w - 1)], left)
    below = flat[rows, h * w - 1] if np.any(idx + w >= h * w) else flat[rows, idx + w]
    above = flat[rows, 0] if np.any(idx - w <= 0) else flat[rows, idx - w]
    preds += np.sign(np.stack((right - left, below - above), axis=1)) * SUBPIXEL_OFFSET
    preds += CENTER_OFFSET
    return preds.reshape(b, n, 2)


def to_68(points98: np.ndarray) -> np.ndarray:
    """(98,2) WFLW points -> (68,2) float32 (pairs of brow/eye points are averaged)."""
    out = np.zeros((68, 2), dtype=np.float32)
    for k, src in enumerate(LANDMARK_98_TO_68):
        out[k] = points98[src[0]] if len(src) == 1 else (points98[src[0]] + points98[src[1]]) / 2
    return out


def fan_input(crop: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h,w,3) uint8 crop -> (1,3,256,256): cv2 bilinear resize, channel axis reversed, /255."""
    resized = cv2.resize(crop, (FAN_INPUT_SIZE, FAN_INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(np.ascontiguousarray(resized[..., ::-1].transpose(2, 0, 1))).float()
    return (x.to(device) / 255.0).unsqueeze(0).to(dtype)


@torch.no_grad()
def crop_landmarks98(net: FAN, crop: np.ndarray) -> np.ndarray:
    """98 points (float64, crop pixels) of a face crop (SadTalker passes RGB; the net then sees BGR)."""
    p = next(net.parameters())
    out = net(fan_input(crop, p.device, p.dtype))[-1][:, :-1]
    heat = out.float().cpu().numpy()
    h, w = crop.shape[:2]
    return heatmap_points(heat).reshape(-1, 2) * np.array([w / heat.shape[3], h / heat.shape[2]])


def box_landmarks68(net: FAN, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """68 points (float32, image pixels) of the face in `box`, cropped as the reference does.

    The crop is rows int(y1):int(y2), cols int(x1):int(x2) (truncation); coordinates are clamped at 0
    here, where the reference would wrap a negative index and fail.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1 = max(x1, 0), max(y1, 0)
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        raise ValueError(f"empty face crop for box {box} in an image of shape {image.shape}")
    lm = to_68(crop_landmarks98(net, crop))
    lm[:, 0] += x1
    lm[:, 1] += y1
    return lm
