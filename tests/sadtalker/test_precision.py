"""The precision policy (sadtalker/precision.py): reduced-precision generator with fp32 islands, explicit TF32
flags, float32 outputs from reduced face networks, and a whole clip in bf16 on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadtalker.animate import render_frames
from sadtalker.checkpoints import load_model
from sadtalker.pipeline import GenerateOptions, Pipeline
from sadtalker.precision import apply_backend_flags, cast_network, storage_dtype, unavailable_reason


def test_tf32_is_set_explicitly_for_every_mode():
    try:
        for mode, tf32 in (("tf32", True), ("fp32", False), ("bf16", False), ("fp16", False)):
            apply_backend_flags(mode, "cpu")
            assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
    finally:
        apply_backend_flags("fp32", "cpu")
    assert unavailable_reason("tf32", "cpu") and unavailable_reason("bf16", "cpu") is None
    with pytest.raises(ValueError, match="precision must be one of"):
        storage_dtype("fp8")


def test_a_reduced_network_hands_back_float32():
    net = cast_network(torch.nn.Conv2d(3, 4, 3), "bf16")
    assert net.weight.dtype == torch.bfloat16
    assert net(torch.ones(1, 3, 8, 8, dtype=torch.bfloat16)).dtype == torch.float32
    same = torch.nn.Conv2d(3, 4, 3)
    assert cast_network(same, "fp32") is same and not same._forward_hooks


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_reduced_generator_keeps_fp32_islands_and_stays_close_to_fp32(small_checkpoints, mode):
    fp32 = load_model(small_checkpoints, device="cpu")
    reduced = load_model(small_checkpoints, device="cpu", dtype=storage_dtype(mode))
    dtype = storage_dtype(mode)
    assert reduced.dtype == dtype and reduced.generator.first.norm.weight.dtype == dtype
    conv = reduced.generator.first.conv.weight   # CPU: reduced values computed in float32 (emulate_cpu_convs)
    assert conv.dtype == torch.float32 and torch.equal(conv, conv.to(dtype).float())
    assert next(reduced.kp_detector.parameters()).dtype == torch.float32           # keypoints island
    assert next(reduced.mapping("crop").parameters()).dtype == torch.float32       # mapping-net island
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    coeffs = np.random.default_rng(1).normal(0, 0.3, (2, 70)).astype(np.float32)
    source = np.zeros(73, np.float32)
    want = next(render_frames(fp32, image, source, coeffs)).astype(int)
    got = next(render_frames(reduced, image, source, coeffs)).astype(int)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got - want).mean() < 3   # levels of 255; exact figures per mode: python -m bench.precision


@pytest.mark.slow
def test_a_whole_clip_in_bf16_on_the_cpu(small_checkpoints, face_png, short_speech_wav, tmp_path):
    pipeline = Pipeline.load(small_checkpoints, device="cpu", precision="bf16", enhancer=False)
    assert pipeline.precision == "bf16" and pipeline.models[256].dtype == torch.bfloat16
    result = pipeline.generate(face_png, short_speech_wav, tmp_path / "bf16.mp4", GenerateOptions(seed=1))
    assert result.video_path.exists() and result.stages["render"]["frames"] == result.frames > 0
    apply_backend_flags("fp32", "cpu")
