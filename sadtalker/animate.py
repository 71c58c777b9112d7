"""Renderer glue (ARCHITECTURE §8.3-8.4): coefficients -> 27-frame windows -> keypoints -> frames.

The source image is encoded once (canonical keypoints, source keypoints, feature volume); each frame
then needs only its mapping window, its driving keypoints and one warp+decode. Every frame depends
only on its own window, so frames are rendered in order, `batch_size` at a time, and leave the device
batch by batch. `batch_layout` reproduces the reference's (batch_size, T'/batch_size) arrangement for
the conformance checks; it does not change any frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoints import FULL_MODES, SadTalkerModel
from .errors import Cancelled
from .keypoints import transform_keypoints

SEMANTIC_RADIUS = 13  # frames on each side of a mapping window (27 frames)
POSE_COLUMNS = slice(64, 70)  # 3 angles + 3 translations
EXP_COLUMNS = slice(0, 64)


def is_full(preprocess: str) -> bool:
    return preprocess in FULL_MODES


def source_image_float(image: np.ndarray, size: int) -> np.ndarray:
    """(H,W,3) uint8 -> (size,size,3) float32 as skimage.img_as_float32 (x * float32(1/255)) + resize."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"source image must be (H,W,3) uint8, got {image.shape} {image.dtype}")
    out = image.astype(np.float32) * np.float32(1 / 255)
    if out.shape[:2] != (size, size):
        from skimage.transform import resize

        out = resize(out, (size, size, 3), order=1, mode="reflect", anti_aliasing=None).astype(np.float32)
    return out


def source_semantics(source_coeff: np.ndarray, preprocess: str) -> np.ndarray:
    """(>=73,) first-frame coefficients -> (C,27) window (C = 73 in full modes, else 70)."""
    c = 73 if is_full(preprocess) else 70
    row = np.asarray(source_coeff, dtype=np.float32).reshape(-1)[:c]
    return np.repeat(row[:, None], 2 * SEMANTIC_RADIUS + 1, axis=1)


def target_coefficients(coeffs: np.ndarray, source_coeff: np.ndarray, preprocess: str, *, still: bool = False,
                        expression_scale: float = 1.0) -> np.ndarray:
    """(T,70) generated coefficients -> (T,C) mapping input per frame (§8.3)."""
    target = np.array(coeffs, dtype=np.float32, copy=True)[:, :70]
    target[:, EXP_COLUMNS] = target[:, EXP_COLUMNS] * expression_scale
    source = np.asarray(source_coeff, dtype=np.float32).reshape(-1)
    if is_full(preprocess):
        target = np.concatenate([target, np.repeat(source[None, 70:73], len(target), axis=0)], axis=1)
    if still:
        target[:, 64:] = source[64:target.shape[1]]  # pose (and crop params) of the source, every frame
    return target


def semantic_windows(target: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    """(T,C) -> (len(frames),C,27): rows f-13..f+13 clamped to [0,T-1], transposed."""
    t = len(target)
    frames = np.arange(t) if frames is None else np.asarray(frames)
    offsets = np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1)
    idx = np.clip(frames[:, None] + offsets[None, :], 0, t - 1)  # F x 27
    return np.ascontiguousarray(target[idx].transpose(0, 2, 1))  # F x C x 27


def padded_length(num_frames: int, batch_size: int) -> int:
    return -(-num_frames // batch_size) * batch_size


def batch_layout(windows: np.ndarray, batch_size: int) -> np.ndarray:
    """(T,C,27) -> (bs, T'/bs, C, 27): last window repeated to T' = multiple of bs; row b = frames b*L..b*L+L-1."""
    pad = padded_length(len(windows), batch_size) - len(windows)
    if pad:
        windows = np.concatenate([windows, np.repeat(windows[-1:], pad, axis=0)], axis=0)
    return windows.reshape(batch_size, -1, *windows.shape[1:])


def quantize(frames: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) float in [0,1] -> (N,H,W,3) uint8: round-half-to-even(x*255 in float32), clipped."""
    scaled = frames.float().permute(0, 2, 3, 1) * 255.0
    return torch.round(scaled).clamp_(0, 255).to(torch.uint8).cpu().numpy()


def quantize_on_device(frames: torch.Tensor) -> torch.Tensor:
    """`quantize` kept on the device: (N,3,H,W) float32 holding the same 0..255 integers."""
    return torch.round(frames.float() * 255.0).clamp_(0, 255)


@dataclass
class SourceEncoding:
    """Everything that depends on the source image only; computed once per video."""

    image: torch.Tensor  # 1 x 3 x S x S
    kp_canonical: torch.Tensor  # 1 x 15 x 3
    kp_source: torch.Tensor  # 1 x 15 x 3
    feature: torch.Tensor  # 1 x 32 x 16 x S/4 x S/4
    compressed: torch.Tensor  # 1 x 4 x 16 x S/4 x S/4


def encode_source(model: SadTalkerModel, source_image: np.ndarray, source_coeff: np.ndarray,
                  preprocess: str = "crop") -> SourceEncoding:
    image = torch.from_numpy(source_image_float(source_image, model.size)).permute(2, 0, 1)[None]
    image = image.to(model.device, torch.float32)
    kp_canonical = model.kp_detector(image)  # fp32 island, as the mapping net and the keypoint math
    semantics = torch.from_numpy(source_semantics(source_coeff, preprocess))[None]
    motion = model.mapping(preprocess)(semantics.to(model.device, torch.float32))
    kp_source = transform_keypoints(kp_canonical, motion)
    feature, compressed = model.generator.encode_source(image.to(model.dtype))
    return SourceEncoding(image, kp_canonical, kp_source, feature, compressed)


def driving_keypoints(model: SadTalkerModel, kp_canonical: torch.Tensor, windows: np.ndarray,
                      preprocess: str = "crop") -> torch.Tensor:
    """(N,C,27) windows -> (N,15,3) driving keypoints."""
    motion = model.mapping(preprocess)(torch.from_numpy(windows).to(model.device, torch.float32))
    return transform_keypoints(kp_canonical, motion)


def render_float_frames(model: SadTalkerModel, source: SourceEncoding, windows: np.ndarray,
                        preprocess: str = "crop") -> tuple[torch.Tensor, torch.Tensor]:
    """(N,C,27) windows -> float frames (N,3,S,S) in (0,1) and their driving keypoints (N,15,3)."""
    kp_driving = driving_keypoints(model, source.kp_canonical, windows, preprocess)
    out = model.generator.animate(source.feature, source.compressed, source.kp_source, kp_driving)
    return out["prediction"], kp_driving


def render_frames(model: SadTalkerModel, source_image: np.ndarray, source_coeff: np.ndarray, coeffs: np.ndarray,
                  *, preprocess: str = "crop", still: bool = False, expression_scale: float = 1.0,
                  batch_size: int = 2, on_progress: Callable[[int, int], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None,
                  frames: range | None = None,
                  as_tensor: bool = False) -> Iterator[np.ndarray] | Iterator[torch.Tensor]:
    """Yield uint8 RGB frames (n,S,S,3) in order, one batch at a time.

    as_tensor: yield the same frames as (n,3,S,S) float32 tensors of 0..255 values on the model's device
    instead (for post-processing there; nothing leaves the device).

    source_image: (S,S,3) uint8 crop; source_coeff: (73,) first-frame coefficients; coeffs: (T,70).
    frames: the part of the clip to render (default all); each frame still sees its neighbours' coefficients,
    so a clip rendered in segments equals the clip rendered at once. Progress counts the frames of `frames`.
    Raises Cancelled at a batch boundary when `should_cancel()` is true.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    coeffs = np.asarray(coeffs)
    if coeffs.ndim != 2 or coeffs.shape[1] < 70 or len(coeffs) == 0:
        raise ValueError(f"coeffs must be (T>=1, 70), got {coeffs.shape}")
    target = target_coefficients(coeffs, source_coeff, preprocess, still=still, expression_scale=expression_scale)
    span = frames if frames is not None else range(len(target))
    if span.step != 1 or span.start < 0 or span.stop > len(target) or len(span) == 0:
        raise ValueError(f"frames must be a non-empty range within 0..{len(target)}, got {span}")
    total = len(span)
    with torch.inference_mode():
        source = encode_source(model, source_image, source_coeff, preprocess)
        for start in range(span.start, span.stop, batch_size):
            done = start - span.start
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"rendering canceled after {done} of {total} frames")
            windows = semantic_windows(target, np.arange(start, min(start + batch_size, span.stop)))
            rendered, _ = render_float_frames(model, source, windows, preprocess)
            batch = quantize_on_device(rendered) if as_tensor else quantize(rendered)  # numpy: leaves the device
            if on_progress is not None:
                on_progress(done + len(batch), total)
            yield batch
