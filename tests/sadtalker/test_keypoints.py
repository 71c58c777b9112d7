"""Keypoint transformation math (§7.4): bins -> degrees -> rotation -> driven keypoints."""

from __future__ import annotations

import math

import numpy as np
import torch

from sadtalker.keypoints import bins_to_degrees, rotation_matrix, transform_keypoints


def _motion(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.randn(n, 66, generator=g) for k in ("yaw", "pitch", "roll")}
    out["t"] = torch.randn(n, 3, generator=g)
    out["exp"] = torch.randn(n, 45, generator=g) * 0.1
    return out


def test_degrees_are_the_expected_bin_times_three_minus_99():
    uniform = torch.zeros(1, 66)
    assert bins_to_degrees(uniform).item() == 3 * 32.5 - 99
    peaked = torch.full((1, 66), -1e4)
    peaked[0, 40] = 0
    assert bins_to_degrees(peaked).item() == 3 * 40 - 99


def test_rotation_uses_3_14_and_pitch_yaw_roll_order():
    yaw, pitch, roll = torch.tensor([30.0]), torch.tensor([-20.0]), torch.tensor([10.0])
    rot = rotation_matrix(yaw, pitch, roll)[0].double().numpy()

    def rad(d):
        return d / 180 * 3.14

    cy, sy = math.cos(rad(30)), math.sin(rad(30))
    cp, sp = math.cos(rad(-20)), math.sin(rad(-20))
    cr, sr = math.cos(rad(10)), math.sin(rad(10))
    p = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    np.testing.assert_allclose(rot, p @ y @ r, atol=1e-6)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    true_pi = rotation_matrix(torch.tensor([180.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0, 0, 0]
    assert true_pi.item() != -1.0  # 180 deg * 3.14/180 is not quite pi


def test_only_vertical_translation_and_expression_are_added():
    kp = torch.randn(1, 15, 3)
    motion = _motion(2)
    motion["yaw"] = motion["pitch"] = motion["roll"] = torch.full((2, 66), -1e4)
    for k in ("yaw", "pitch", "roll"):
        motion[k][:, 33] = 0  # 0 degrees: identity rotation
    out = transform_keypoints(kp, motion)
    expected = kp + motion["exp"].view(2, 15, 3)
    expected[:, :, 1] += motion["t"][:, 1:2]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(transform_keypoints(kp, motion, without_expression=True) + motion["exp"].view(2, 15, 3),
                               out)
    assert motion["t"][:, 0].abs().sum() > 0  # the caller's tensor is not modified in place


def test_angle_overrides_replace_the_predicted_degrees():
    kp = torch.randn(1, 15, 3)
    motion = _motion(3, seed=1)
    angles = {"yaw": torch.tensor([10.0, 0.0, -5.0]), "pitch": torch.zeros(3), "roll": torch.tensor([1.0, 2.0, 3.0])}
    out = transform_keypoints(kp, motion, angles_deg=angles)
    rot = rotation_matrix(angles["yaw"], angles["pitch"], angles["roll"])
    t = motion["t"].clone()
    t[:, [0, 2]] = 0
    expected = torch.einsum("bij,bkj->bki", rot, kp.expand(3, -1, -1)) + t[:, None] + motion["exp"].view(3, 15, 3)
    torch.testing.assert_close(out, expected)
