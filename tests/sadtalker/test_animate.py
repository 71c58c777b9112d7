"""Renderer glue (§8.3-8.4): windows, batch layout, still/full modes, and the streaming render loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadtalker import animate
from sadtalker.checkpoints import load_model
from sadtalker.errors import Cancelled

SIZE = 256


@pytest.fixture(scope="module")
def model(small_checkpoints):
    return load_model(small_checkpoints, device="cpu")


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    source = rng.normal(0, 0.3, 73).astype(np.float32)
    coeffs = rng.normal(0, 0.3, (5, 70)).astype(np.float32)
    return image, source, coeffs


def test_windows_clamp_at_both_ends():
    target = np.arange(5, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # T=5, C=2
    w = animate.semantic_windows(target)
    assert w.shape == (5, 2, 27)
    assert w[0, 0].tolist() == [0] * 14 + [1, 2, 3, 4] + [4] * 9
    assert w[4, 1].tolist() == [0] * 10 + [1, 2, 3] + [4] * 14
    assert w[2, 0, 13] == 2


def test_batch_layout_is_row_major_with_the_last_window_repeated():
    windows = np.arange(5, dtype=np.float32).reshape(5, 1, 1)
    layout = animate.batch_layout(windows, 2)
    assert layout.shape == (2, 3, 1, 1)
    assert layout[:, :, 0, 0].tolist() == [[0, 1, 2], [3, 4, 4]]  # row b holds frames b*L .. b*L+L-1
    assert animate.batch_layout(windows, 1).shape == (1, 5, 1, 1)


def test_target_coefficients_scale_still_and_full_modes():
    coeffs = np.ones((3, 70), np.float32)
    source = np.arange(73, dtype=np.float32)
    t = animate.target_coefficients(coeffs, source, "crop", expression_scale=2.0)
    assert t.shape == (3, 70) and (t[:, :64] == 2).all() and (t[:, 64:] == 1).all()
    t = animate.target_coefficients(coeffs, source, "full", still=True)
    assert t.shape == (3, 73)
    assert (t[:, :64] == 1).all() and (t[:, 64:] == source[64:73]).all()
    t = animate.target_coefficients(coeffs, source, "extfull")
    assert (t[:, 64:70] == 1).all() and (t[:, 70:] == source[70:73]).all()
    assert animate.source_semantics(source, "resize").shape == (70, 27)
    assert (animate.source_semantics(source, "full")[:, 5] == source).all()


def test_source_image_uses_the_rounded_reciprocal_of_255():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = animate.source_image_float(np.tile(img, (16, 16, 1)), 256)
    assert out.dtype == np.float32
    expected = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(out[:16, :16, 0].reshape(-1), expected)
    assert (expected != np.arange(256, dtype=np.float32) / np.float32(255)).sum() > 0  # not a true division


def test_quantize_rounds_half_to_even():
    values = torch.tensor([0.5, 1.5, 2.5, 254.5, 300.0, -3.0]) / 255
    out = animate.quantize(values.view(1, 1, 1, -1).expand(1, 3, 1, 6))
    assert out.shape == (1, 1, 6, 3)
    assert out[0, 0, :, 0].tolist() == [0, 2, 2, 254, 255, 0]


def test_frames_stream_in_order_batch_by_batch(model, inputs):
    image, source, coeffs = inputs
    progress = []
    stream = animate.render_frames(model, image, source, coeffs, batch_size=2,
                                   on_progress=lambda done, total: progress.append((done, total)))
    first = next(stream)
    assert isinstance(first, np.ndarray) and first.dtype == np.uint8 and first.shape == (2, SIZE, SIZE, 3)
    assert progress == [(2, 5)]  # nothing beyond the first batch was rendered yet
    rest = list(stream)
    assert [len(b) for b in rest] == [2, 1]
    assert progress == [(2, 5), (4, 5), (5, 5)]
    frames = np.concatenate([first, *rest])
    one_by_one = np.concatenate(list(animate.render_frames(model, image, source, coeffs, batch_size=1)))
    diff = np.abs(frames.astype(int) - one_by_one.astype(int))  # batch-size-dependent conv algorithms
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005
    assert not np.array_equal(frames[0], frames[-1])


def test_cancel_stops_at_a_batch_boundary(model, inputs):
    image, source, coeffs = inputs
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 1

    got = []
    with pytest.raises(Cancelled) as info:
        for batch in animate.render_frames(model, image, source, coeffs, batch_size=2, should_cancel=should_cancel):
            got.append(batch)
    assert len(got) == 1 and info.value.code == "canceled"
    assert "2 of 5" in str(info.value)


def test_still_mode_keeps_the_source_pose_and_full_mode_uses_the_73_channel_net(model, inputs):
    image, source, coeffs = inputs
    moving = np.concatenate(list(animate.render_frames(model, image, source, coeffs[:2])))
    still = np.concatenate(list(animate.render_frames(model, image, source, coeffs[:2], still=True)))
    assert not np.array_equal(moving, still)
    full = np.concatenate(list(animate.render_frames(model, image, source, coeffs[:2], preprocess="full")))
    assert full.shape == moving.shape and 73 in model.mappings


def test_bfloat16_renderer_gives_close_frames(small_checkpoints, model, inputs):
    image, source, coeffs = inputs
    half = load_model(small_checkpoints, device="cpu", dtype=torch.bfloat16)
    # bf16 storage; on this CPU the convolutions keep bf16-rounded weights in float32 form (precision.py)
    assert half.dtype == torch.bfloat16
    assert any(p.dtype == torch.bfloat16 for p in half.generator.parameters())
    assert next(half.audio2exp.parameters()).dtype == torch.float32 and next(half.kp_detector.parameters()).dtype == torch.float32
    a = np.concatenate(list(animate.render_frames(model, image, source, coeffs[:2])))
    b = np.concatenate(list(animate.render_frames(half, image, source, coeffs[:2])))
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 8


def test_bad_arguments_are_refused(model, inputs):
    image, source, coeffs = inputs
    with pytest.raises(ValueError, match="batch_size"):
        next(animate.render_frames(model, image, source, coeffs, batch_size=0))
    with pytest.raises(ValueError, match="coeffs"):
        next(animate.render_frames(model, image, source, coeffs[:, :10]))
    with pytest.raises(ValueError, match="uint8"):
        next(animate.render_frames(model, image.astype(np.float32), source, coeffs))
