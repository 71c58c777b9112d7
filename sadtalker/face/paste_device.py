"""The enhancer's alignment and paste-back on the frames' device, batched (the twins of `paste.py`).

Frames and faces are (N,3,H,W) RGB float tensors holding 0..255 values. The reference path (`paste.py`) works
on BGR uint8 arrays in float64; here images are float32 on the device and the final blend float64, so the output
differs from it by at most one level on a small share of pixels (docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import imageops
from .constants import (
    FACE_SIZE,
    PARSE_BLUR_KSIZE,
    PARSE_BLUR_SIGMA,
    PARSE_BLUR_TIMES,
    PARSE_BORDER_PX,
    PARSE_COLORMAP,
    WARP_BORDER_BGR,
)

PLATEAU_TOLERANCE = 1e-9   # a window that reaches a 0 pixel is at least 255 * 3e-5 below 255
WARP_BORDER_RGB = tuple(float(v) for v in WARP_BORDER_BGR[::-1])


def warp_faces(frames: torch.Tensor, owners: list[int], affines: np.ndarray) -> torch.Tensor:
    """The (K,3,512,512) aligned crops of faces k of frames `owners[k]` with their (K,2,3) affines."""
    return imageops.warp_affine(frames[owners], affines, (FACE_SIZE, FACE_SIZE), WARP_BORDER_RGB)


def parse_masks(labels: torch.Tensor) -> torch.Tensor:
    """(K,512,512) ParseNet labels -> (K,1,512,512) float64 soft masks in [0,1] (`paste.parse_mask`, batched).

    float64 as the reference: the final truncating blend is sensitive to the mask's last bits (see
    `paste_faces`)."""
    colormap = torch.from_numpy(PARSE_COLORMAP).to(labels.device)
    mask = colormap[labels.long()][:, None]
    for _ in range(PARSE_BLUR_TIMES):
        mask = imageops.gaussian_blur(mask, PARSE_BLUR_KSIZE, PARSE_BLUR_SIGMA)
    # where the whole window is 255 the value is exactly 255 (as OpenCV's sums give it); another order of
    # summation leaves 255 - 3e-14, which the truncating blend turns into face - 1 on the whole face
    mask = torch.where((mask - 255).abs() < PLATEAU_TOLERANCE, torch.full_like(mask, 255.0), mask)
    b = PARSE_BORDER_PX
    mask[..., :b, :] = 0
    mask[..., -b:, :] = 0
    mask[..., :, :b] = 0
    mask[..., :, -b:] = 0
    return mask / 255.0


def paste_faces(frames: torch.Tensor, owners: list[int], restored: torch.Tensor, inverses: np.ndarray,
                masks: torch.Tensor, upscale: int) -> torch.Tensor:
    """Blend restored faces (K,3,512,512), in order, over the Lanczos-upscaled frames (N,3,H,W) with their
    soft masks (K,1,512,512) -> (N,3,uH,uW) 0..255 values, truncated as the reference's uint8 cast."""
    if upscale != 2:
        raise ValueError(f"the device paste-back supports the reference's 2x upscale only, not {upscale}x")
    out = imageops.upscale2x_lanczos(frames)
    if not owners:
        return out
    blended = out.double()
    for k, n in enumerate(owners):
        # only the window the face can reach: outside it the mask is exactly 0 and the frame stays as it is
        x0, y0, x1, y1 = imageops.reach(inverses[k], (FACE_SIZE, FACE_SIZE), (out.shape[-1], out.shape[-2]))
        if x1 <= x0 or y1 <= y0:
            continue
        size, origin = (x1 - x0, y1 - y0), (x0, y0)
        face = imageops.warp_affine(restored[k:k + 1], inverses[k:k + 1], size, origin=origin)[0]   # rounded
        # float64 as the reference: where the soft mask's tail is ~1e-9, the truncating cast keeps the sign
        # of m * (face - background), which float32 would round away
        weight = imageops.warp_affine_fixed(masks[k:k + 1].double(), inverses[k:k + 1], size, origin=origin)[0]
        region = blended[n, :, y0:y1, x0:x1]
        blended[n, :, y0:y1, x0:x1] = weight * face.double() + (1 - weight) * region
    return torch.trunc(blended).to(out.dtype)
