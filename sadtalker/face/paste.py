"""Alignment to the 512 FFHQ template and paste-back of restored faces (SPEC §6 steps 3, 5, 6).

Pure numpy/OpenCV on BGR uint8 images, in the reference's order and dtypes (float64 soft-mask blend with a
truncating uint8 cast; float32 for the plain-mask branch), so results match it exactly. uint8/float32 warps use
`warp.warp_affine` (OpenCV 5 arithmetic, whatever OpenCV is installed); float64 masks use cv2.warpAffine.
"""

from __future__ import annotations

import cv2
import numpy as np

from .constants import (
    FACE_SIZE,
    FACE_TEMPLATE_512,
    PARSE_BLUR_KSIZE,
    PARSE_BLUR_SIGMA,
    PARSE_BLUR_TIMES,
    PARSE_BORDER_PX,
    PARSE_COLORMAP,
    WARP_BORDER_BGR,
)
from .warp import warp_affine


def estimate_affine(landmarks5: np.ndarray) -> np.ndarray:
    """(5,2) points -> (2,3) float64 similarity onto the template (LMEDS: an outlying point is dropped)."""
    template = FACE_TEMPLATE_512 * (FACE_SIZE / 512)
    affine, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks5), template, method=cv2.LMEDS)
    if affine is None:
        raise ValueError(f"no similarity transform for landmarks {np.asarray(landmarks5).tolist()}")
    return affine


def warp_face(frame_bgr: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The 512×512 aligned crop (bilinear, constant border (135,133,132))."""
    return warp_affine(frame_bgr, affine, (FACE_SIZE, FACE_SIZE), WARP_BORDER_BGR)


def inverse_affine(affine: np.ndarray, upscale: int) -> np.ndarray:
    """Crop -> upscaled frame: inverse × upscale, then +0.5·upscale on the translation (when upscale > 1)."""
    inv = cv2.invertAffineTransform(affine) * upscale
    if upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv


def blurred_parse_mask(labels: np.ndarray) -> np.ndarray:
    """(512,512) ParseNet labels -> colour-mapped 0/255 float64 mask after the two 101×101 σ11 blurs."""
    mask = PARSE_COLORMAP[labels]
    for _ in range(PARSE_BLUR_TIMES):
        mask = cv2.GaussianBlur(mask, (PARSE_BLUR_KSIZE, PARSE_BLUR_KSIZE), PARSE_BLUR_SIGMA)
    return mask


def parse_mask(labels: np.ndarray) -> np.ndarray:
    """(512,512) labels -> soft face mask in [0,1] float64 (border of 10 px zeroed), before warping."""
    mask = blurred_parse_mask(labels)
    b = PARSE_BORDER_PX
    mask[:b, :] = 0
    mask[-b:, :] = 0
    mask[:, :b] = 0
    mask[:, -b:] = 0
    return mask / 255.0


def warp_mask(mask: np.ndarray, inv: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Soft mask warped into the upscaled frame (flag 3 = INTER_AREA, bilinear in warpAffine)."""
    mask = cv2.resize(mask, mask.shape[:2])  # the reference's resize to the face size (a no-op at 512)
    return cv2.warpAffine(mask, inv, (out_hw[1], out_hw[0]), flags=cv2.INTER_AREA)


def plain_blend(inv_restored: np.ndarray, inv: np.ndarray, out: np.ndarray, upscale: int) -> np.ndarray:
    """The no-parse branch: eroded warped square, edge width from its area, Gaussian-feathered (float32)."""
    h, w = out.shape[:2]
    hard = warp_affine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), inv, (w, h))
    hard = cv2.erode(hard, np.ones((2 * upscale, 2 * upscale), np.uint8))
    pasted = hard[:, :, None] * inv_restored
    w_edge = int(np.sum(hard) ** 0.5) // 20
    center = cv2.erode(hard, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
    soft = cv2.GaussianBlur(center, (2 * w_edge + 1, 2 * w_edge + 1), 0)[:, :, None]
    return soft * pasted + (1 - soft) * out


def paste_faces(frame_bgr: np.ndarray, restored_bgr: list[np.ndarray], inverses: list[np.ndarray],
                masks: list[np.ndarray] | None, upscale: int,
                background: np.ndarray | None = None) -> np.ndarray:
    """Blend restored faces, in order, over the Lanczos-upscaled frame; (uH,uW,3) uint8 (truncated).

    masks: per face the output of `parse_mask` (the enhancer's path), or None for the plain-mask branch.
    """
    h, w = frame_bgr.shape[:2]
    out_hw = (h * upscale, w * upscale)
    out = background if background is not None else upscale_background(frame_bgr, upscale)
    for k, (face, inv) in enumerate(zip(restored_bgr, inverses, strict=True)):
        inv_restored = warp_affine(face, inv, (out_hw[1], out_hw[0]))
        if masks is None:
            out = plain_blend(inv_restored, inv, out, upscale)
        else:
            m = warp_mask(masks[k], inv, out_hw)[:, :, None]
            out = m * inv_restored + (1 - m) * out
    return out.astype(np.uint8)


def upscale_background(frame_bgr: np.ndarray, upscale: int) -> np.ndarray:
    h, w = frame_bgr.shape[:2]
    return cv2.resize(frame_bgr, (w * upscale, h * upscale), interpolation=cv2.INTER_LANCZOS4)
