"""Keypoint transformation (ARCHITECTURE §7.4): pose bins -> degrees -> rotation -> driven keypoints.

Pure tensor math, no weights. Quirks of the reference kept on purpose: radians use 3.14 (not pi),
Rot = P(pitch) . Y(yaw) . R(roll), and the x and z translations are forced to 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

BIN_DEGREES = 3.0
DEGREE_OFFSET = 99.0
PI_OF_THE_REFERENCE = 3.14


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(N,66) bin logits -> (N,) degrees: 3 * E[bin] - 99."""
    prob = F.softmax(logits, dim=1)
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return torch.sum(prob * idx, 1) * BIN_DEGREES - DEGREE_OFFSET


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Degrees (N,) each -> (N,3,3) rotation P(pitch) . Y(yaw) . R(roll)."""
    yaw, pitch, roll = (a / 180 * PI_OF_THE_REFERENCE for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    p = torch.stack([one, zero, zero,
                     zero, torch.cos(pitch), -torch.sin(pitch),
                     zero, torch.sin(pitch), torch.cos(pitch)], dim=1).view(-1, 3, 3)
    y = torch.stack([torch.cos(yaw), zero, torch.sin(yaw),
                     zero, one, zero,
                     -torch.sin(yaw), zero, torch.cos(yaw)], dim=1).view(-1, 3, 3)
    r = torch.stack([torch.cos(roll), -torch.sin(roll), zero,
                     torch.sin(roll), torch.cos(roll), zero,
                     zero, zero, one], dim=1).view(-1, 3, 3)
    return torch.einsum("bij,bjk,bkm->bim", p, y, r)


def transform_keypoints(kp_canonical: torch.Tensor, motion: Mapping[str, torch.Tensor], *,
                        without_expression: bool = False,
                        angles_deg: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Canonical keypoints (N or 1, K, 3) + mapping output -> driven keypoints (N, K, 3).

    `angles_deg` may hold `yaw`, `pitch`, `roll` overrides in degrees (N,), replacing the predicted ones.
    """
    degrees = {name: bins_to_degrees(motion[name]) for name in ("yaw", "pitch", "roll")}
    degrees.update(angles_deg or {})
    rot = rotation_matrix(degrees["yaw"], degrees["pitch"], degrees["roll"])  # N x 3 x 3
    kp_rotated = torch.einsum("bmp,bkp->bkm", rot, kp_canonical.expand(rot.shape[0], -1, -1))
    t = motion["t"].clone()
    t[:, 0] = 0  # only the vertical translation is kept
    t[:, 2] = 0
    kp = kp_rotated + t.unsqueeze(1)  # N x K x 3
    if without_expression:
        return kp + 0 * motion["exp"].view(motion["exp"].shape[0], -1, 3)
    return kp + motion["exp"].view(motion["exp"].shape[0], -1, 3)  # exp: N x 3K -> N x K x 3
