"""Coefficient glue: blinks, seeded noise, smoothing, reference videos, and the golden end-to-end coefficients."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from reference_weights import MAIN, standin_state

from sadtalker import audio
from sadtalker.audio2exp import ExpNet, ExpNetDims
from sadtalker.audio2pose import PoseVAE, PoseVAEDims
from sadtalker.coeffs import (
    BLINK_PATTERN,
    audio_to_coefficients,
    blink_ratio,
    seeded_pose_noise,
    smooth_pose,
    tile_to_length,
)

T = 40  # frames of the small-network runs


def randomise(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and BN statistic random (not the constructor's zeros/ones), eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif t.is_floating_point():
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
    return net.eval()


@pytest.fixture(scope="module")
def nets():
    return randomise(ExpNet(ExpNetDims.small()), 1), randomise(PoseVAE(PoseVAEDims.small()), 2)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    mels = rng.uniform(-4, 4, (T, 80, 16)).astype(np.float32)
    first = rng.normal(0, 0.3, 73).astype(np.float32)
    return mels, first


@pytest.fixture(scope="module")
def base(nets, inputs) -> np.ndarray:
    """Coefficients with the default options (no blinks, no reference videos, noise seed 7)."""
    return run(nets, inputs)


def run(nets, inputs, **kw) -> np.ndarray:
    kw.setdefault("noise", seeded_pose_noise(7))
    return audio_to_coefficients(nets[0], nets[1], inputs[0], inputs[1], **kw)


def test_blink_ratio_matches_the_reference_draw(reference_dir):
    golden = reference_dir / "sadtalker" / "golden"
    params = json.loads((golden / "params.json").read_text())
    g = np.load(golden / "j_e2e_still0.npz")
    ratio = blink_ratio(int(g["frame_num"]), random.Random(params["blink_seed"]))
    np.testing.assert_array_equal(ratio, g["ratio_blink"][0, :, 0])


@pytest.mark.parametrize("num_frames", [0, 5, 20, 21, 22, 60, 500])
def test_blink_ratio_shape_and_placement(num_frames):
    ratio = blink_ratio(num_frames, random.Random(11))
    assert ratio.shape == (num_frames,) and ratio.dtype == np.float32
    np.testing.assert_array_equal(ratio, blink_ratio(num_frames, random.Random(11)))
    if num_frames <= 21:  # too short (21: the reference's empty gap range)
        assert not ratio.any()
        return
    starts = [i for i in range(num_frames) if ratio[i] > 0 and (i == 0 or ratio[i - 1] == 0)]
    assert starts and starts[0] >= 10
    for s in starts:
        np.testing.assert_array_equal(ratio[s:s + 5], np.float32(BLINK_PATTERN))
        assert s + 5 <= num_frames - 1
    assert np.count_nonzero(ratio) == 5 * len(starts)
    for a, b in zip(starts, starts[1:], strict=False):
        assert b - a >= 15  # 5 blink frames, then a gap of at least 10


def test_seeded_noise_is_a_pure_function_of_seed_and_block():
    a, b = seeded_pose_noise(3), seeded_pose_noise(3, "cpu")
    forward = [a(k) for k in range(4)]
    backward = [b(k) for k in reversed(range(4))][::-1]
    for x, y in zip(forward, backward, strict=True):
        assert x.shape == (1, 64)
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(forward[0], forward[1])
    assert not torch.equal(seeded_pose_noise(4)(0), forward[0])


def test_tile_to_length():
    seq = np.arange(3)[:, None]
    assert tile_to_length(seq, 7)[:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tile_to_length(seq, 2)[:, 0].tolist() == [0, 1]
    with pytest.raises(ValueError):
        tile_to_length(seq[:0], 3)


@pytest.mark.parametrize("length", [1, 2, 3, 8, 13, 40])
def test_smoothing_keeps_quadratics(length):
    t = np.arange(length, dtype=np.float64)[:, None]
    pose = (0.01 * t**2 - 0.2 * t + 1.0) * np.arange(1, 7)  # (length, 6), each column quadratic in time
    np.testing.assert_allclose(smooth_pose(pose), pose, atol=1e-9)


def test_smoothing_removes_jitter():
    jitter = np.tile([1.0, -1.0], 20)[:, None] * np.ones((1, 6))
    assert np.abs(smooth_pose(jitter)[6:-6]).max() < 0.15  # the edges are polynomial fits, not averages


def test_output_shape_and_reproducibility(nets, inputs, base):
    out = base
    assert out.shape == (T, 70) and out.dtype == np.float32
    np.testing.assert_array_equal(out, run(nets, inputs))
    other = run(nets, inputs, noise=seeded_pose_noise(8))
    np.testing.assert_array_equal(other[:, :64], out[:, :64])  # noise drives the pose only
    assert not np.allclose(other[:, 64:], out[:, 64:])


def test_blinks_change_the_expression_only(nets, inputs, base):
    ratio = blink_ratio(T, random.Random(0))
    assert ratio.any()
    plain, blinking = base, run(nets, inputs, blink=ratio)
    np.testing.assert_array_equal(plain[:, 64:], blinking[:, 64:])
    changed = np.abs(plain[:, :64] - blinking[:, :64]).max(axis=1) > 0
    np.testing.assert_array_equal(changed, ratio > 0)


def test_ref_expression_replaces_source_expression_and_disables_blinks(nets, inputs, base):
    ratio = blink_ratio(T, random.Random(0))
    source_exp = np.repeat(inputs[1][None, :64], 5, axis=0)
    np.testing.assert_array_equal(run(nets, inputs, ref_expression=source_exp), base)
    ref_exp = np.random.default_rng(1).normal(0, 0.3, (7, 64)).astype(np.float32)  # tiled to T
    with_blink = run(nets, inputs, blink=ratio, ref_expression=ref_exp)
    np.testing.assert_array_equal(with_blink, run(nets, inputs, ref_expression=ref_exp))
    assert not np.allclose(with_blink[:, :64], base[:, :64])


def test_ref_pose_adds_relative_motion(nets, inputs, base):
    still_ref = np.tile(np.float32([0.3, -0.2, 0.1, 5, 6, 7]), (9, 1))
    np.testing.assert_array_equal(run(nets, inputs, ref_pose=still_ref), base)
    ramp = (np.arange(10, dtype=np.float32)[:, None] * 0.01) * np.ones((1, 6), np.float32) + 2.0
    moved = run(nets, inputs, ref_pose=ramp)
    expected = tile_to_length(ramp, T) - ramp[0]
    np.testing.assert_allclose(moved[:, 64:] - base[:, 64:], expected, atol=1e-6)
    np.testing.assert_array_equal(moved[:, :64], base[:, :64])


def test_bad_inputs_are_refused(nets, inputs):
    with pytest.raises(ValueError, match="blink"):
        run(nets, inputs, blink=np.zeros(T + 1, np.float32))
    with pytest.raises(ValueError, match="ref_pose"):
        run(nets, inputs, ref_pose=np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="ref_expression"):
        run(nets, inputs, ref_expression=np.zeros((0, 64), np.float32))
    with pytest.raises(ValueError, match="first_coeff"):
        audio_to_coefficients(nets[0], nets[1], inputs[0], inputs[1][:64], noise=seeded_pose_noise(0))
    with pytest.raises(ValueError, match="indiv_mels"):
        audio_to_coefficients(nets[0], nets[1], inputs[0][:0], inputs[1], noise=seeded_pose_noise(0))


def test_golden_end_to_end_coefficients(reference_dir):
    """The coefficients of both end-to-end files (still off/on: still only matters to the renderer)."""
    golden = reference_dir / "sadtalker" / "golden"
    g = np.load(golden / "j_e2e_still0.npz")
    exp_net = ExpNet.from_state_dict(standin_state(reference_dir, "audio2exp."), MAIN)
    pose_vae = PoseVAE.from_state_dict(standin_state(reference_dir, "audio2pose."), MAIN)
    mels = audio.audio_features(g["pcm_int16"].astype(np.float32) / 32768)
    np.testing.assert_array_equal(mels, g["indiv_mels"][0, :, 0])
    z = torch.from_numpy(g["pose_z"])
    coeffs = audio_to_coefficients(exp_net, pose_vae, mels, g["first_coeff_73"][0], pose_style=int(g["pose_style"]),
                                   blink=g["ratio_blink"][0, :, 0], noise=lambda k: z[k])
    for still in (0, 1):
        expected = np.load(golden / f"j_e2e_still{still}.npz")["coeff_3dmm_70"]
        assert np.abs(coeffs - expected).max() <= 1e-5 * np.abs(expected).max()
