"""Audio -> per-frame 3DMM motion coefficients (ARCHITECTURE §5.5-5.7, §8.1, §8.2).

Output: (T, 70) float32 = 64 expression coefficients (ExpNet) + 6 pose values (PoseVAE: 3 angles in
radians, 3 translations), one row per 25 fps video frame. Randomness comes in only through the
arguments: the blink sequence (drawn from a `random.Random`) and the pose noise callable.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from scipy.signal import savgol_filter

from .audio2exp import ExpNet
from .audio2pose import PoseVAE

EXP_DIM = 64  # expression columns 0:64
POSE_SLICE = slice(64, 70)  # 3 angles + 3 translations
COEFF_DIM = 70

BLINK_PATTERN = (0.5, 0.9, 1.0, 0.9, 0.5)  # eye-closure ratio over the 5 frames of one blink
BLINK_MIN_FRAMES = 21  # clips of 20 frames (0.8 s) or fewer get no blinks
BLINK_GAP_MIN = 10  # frames before a blink starts, at least ...
BLINK_GAP_MAX = 70  # ... and below this (and below T/2)

SAVGOL_WINDOW = 13  # frames of the Savitzky-Golay pose smoothing
SAVGOL_ORDER = 2
LATENT_DIM = 64  # PoseVAE noise size
EXP_CHUNK = 256  # frames per ExpNet call (the reference uses 10; chunking does not change numbers)


def blink_ratio(num_frames: int, rng: random.Random) -> np.ndarray:
    """(T,) float32 eye-blink ratio, drawn like the reference (§8.1) from `rng`.

    Repeatedly: wait a random gap in [min(10, T), min(T // 2, 70)), then one 5-frame blink, until the
    next blink would not end before the last frame. Where the reference would fail on an empty gap
    range (T = 21), no blink is placed.
    """
    ratio = np.zeros(num_frames, dtype=np.float32)
    gaps = range(min(BLINK_GAP_MIN, num_frames), min(int(num_frames / 2), BLINK_GAP_MAX))
    if num_frames < BLINK_MIN_FRAMES or not gaps:
        return ratio
    frame = 0
    while frame < num_frames:
        start = frame + rng.choice(gaps)
        if start + len(BLINK_PATTERN) > num_frames - 1:
            break
        ratio[start:start + len(BLINK_PATTERN)] = BLINK_PATTERN
        frame = start + len(BLINK_PATTERN)
    return ratio


def seeded_pose_noise(seed: int, device: torch.device | str | None = None,
                      size: int = LATENT_DIM) -> Callable[[int], torch.Tensor]:
    """noise(k) -> (1, size) standard normal z of pose block k, a pure function of (seed, k).

    Drawn on the CPU with its own torch.Generator and then moved to `device`, so CPU and CUDA runs
    get identical noise.
    """
    def noise(k: int) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn(k + 1, size, generator=gen)[k:k + 1].to(device)

    return noise


def unseeded_pose_noise(k: int) -> torch.Tensor:
    """The reference behaviour: a fresh torch.randn draw per block from torch's global generator."""
    return torch.randn(1, LATENT_DIM)


def tile_to_length(seq: np.ndarray, num_frames: int) -> np.ndarray:
    """Repeat `seq` (N, ...) whole, then partially, to exactly `num_frames` rows (or cut it)."""
    seq = np.asarray(seq)
    if len(seq) == 0:
        raise ValueError("cannot tile an empty sequence")
    reps = -(-num_frames // len(seq))  # ceil
    return np.concatenate([seq] * reps)[:num_frames]


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """(T, 6) -> (T, 6) Savitzky-Golay along time: window 13 (or the largest odd <= T), order 2, 'interp'.

    Clips shorter than 3 frames are returned unchanged (no window can fit a quadratic).
    """
    window = SAVGOL_WINDOW if len(pose) >= SAVGOL_WINDOW else int((len(pose) - 1) / 2) * 2 + 1
    if window <= SAVGOL_ORDER:
        return pose
    return savgol_filter(pose, window, SAVGOL_ORDER, axis=0, mode="interp")


def audio_to_coefficients(
    exp_net: ExpNet,
    pose_vae: PoseVAE,
    indiv_mels: np.ndarray,
    first_coeff: np.ndarray,
    *,
    pose_style: int = 0,
    blink: np.ndarray | None = None,
    noise: Callable[[int], torch.Tensor] | None = None,
    ref_expression: np.ndarray | None = None,
    ref_pose: np.ndarray | None = None,
) -> np.ndarray:
    """(T, 70) float32 motion coefficients for T mel windows (§8.2).

    indiv_mels (T, 80, 16) from `audio.audio_features`; first_coeff (>= 70,) the source image's
    coefficients; pose_style 0..45; blink (T,) ratio (None: no blinks); noise(k) the (1, 64) z of pose
    block k (None: torch's global generator, like the reference); ref_expression (N, 64) expressions of
    a reference video, tiled to T, replacing the source expression and disabling blinks;
    ref_pose (N, 6) poses of a reference video, tiled to T, whose motion relative to its first frame
    is added to the generated pose.
    """
    indiv_mels = np.asarray(indiv_mels, dtype=np.float32)
    if indiv_mels.ndim != 3 or len(indiv_mels) == 0 or indiv_mels.shape[1:] != (80, 16):
        raise ValueError(f"indiv_mels must be (T>=1, 80, 16), got {indiv_mels.shape}")
    num_frames = len(indiv_mels)
    first = np.asarray(first_coeff, dtype=np.float32).reshape(-1)[:COEFF_DIM]
    if len(first) < COEFF_DIM:
        raise ValueError(f"first_coeff needs at least {COEFF_DIM} values, got {len(first)}")
    _check_columns("ref_pose", ref_pose, POSE_SLICE.stop - POSE_SLICE.start)
    ref_exp, ratio = expression_inputs(first, num_frames, blink, ref_expression)
    param = next(exp_net.parameters())
    mels = torch.as_tensor(indiv_mels).to(param.device, param.dtype)[:, None]  # T x 1 x 80 x 16

    with torch.no_grad():
        exp = predict_expression(exp_net, mels, torch.as_tensor(ref_exp).to(mels),
                                 torch.as_tensor(ratio)[:, None].to(mels))
        pose = pose_vae.predict_motion(mels[None], torch.as_tensor(first[None, POSE_SLICE]).to(mels),
                                       pose_style, noise or unseeded_pose_noise)
    pose_np = smooth_pose(pose[0].float().cpu().numpy())
    coeffs = np.concatenate([exp.float().cpu().numpy(), pose_np], axis=1).astype(np.float32)
    if ref_pose is not None:
        ref = tile_to_length(np.asarray(ref_pose, dtype=np.float32)[:, :6], num_frames)
        coeffs[:, POSE_SLICE] += ref - ref[:1]
    return coeffs


def expression_inputs(first: np.ndarray, num_frames: int, blink: np.ndarray | None,
                      ref_expression: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """ExpNet's reference expression (T, 64) and blink ratio (T,) (§8.1).

    The source expression repeated, or a reference video's expressions tiled (then no blinks: the
    video's eyelids are in its expressions).
    """
    if ref_expression is not None:
        _check_columns("ref_expression", ref_expression, EXP_DIM)
        ref_exp = tile_to_length(np.asarray(ref_expression, dtype=np.float32)[:, :EXP_DIM], num_frames)
        return ref_exp, np.zeros(num_frames, dtype=np.float32)
    ratio = np.zeros(num_frames, np.float32) if blink is None else np.asarray(blink, np.float32)
    if ratio.shape != (num_frames,):
        raise ValueError(f"blink has shape {ratio.shape}, expected ({num_frames},)")
    return np.repeat(first[None, :EXP_DIM], num_frames, axis=0), ratio


def _check_columns(name: str, seq: np.ndarray | None, columns: int) -> None:
    if seq is not None and (np.ndim(seq) != 2 or np.shape(seq)[0] == 0 or np.shape(seq)[1] < columns):
        raise ValueError(f"{name} must be (N>=1, {columns}), got {np.shape(seq)}")


def predict_expression(exp_net: ExpNet, mels: torch.Tensor, ref_exp: torch.Tensor,
                       ratio: torch.Tensor) -> torch.Tensor:
    """mels (T, 1, 80, 16), ref_exp (T, 64), ratio (T, 1) -> (T, 64), in chunks of EXP_CHUNK frames."""
    parts = [exp_net(m, r, b) for m, r, b in zip(mels.split(EXP_CHUNK), ref_exp.split(EXP_CHUNK),
                                                   ratio.split(EXP_CHUNK), strict=True)]
    return torch.cat(parts)
