"""ExpNet: official tensor names, strict loading, golden outputs with the reference's stand-in weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_weights import MAIN, manifest_shapes, standin_state

from sadtalker import CheckpointError
from sadtalker.audio2exp import ExpNet, ExpNetDims


@pytest.mark.parametrize(("file", "prefix"), [(MAIN, "audio2exp."), ("auido2exp_00300-model.pth", "model.")])
def test_names_and_shapes_are_the_official_ones(reference_dir, file, prefix):
    ours = {k: tuple(v.shape) for k, v in ExpNet().state_dict().items()}
    assert ours == manifest_shapes(reference_dir, file, prefix)


def test_small_dims_keep_names_and_run():
    full, small = ExpNet().state_dict(), ExpNet(ExpNetDims.small()).state_dict()
    assert list(small) == list(full)
    net = ExpNet.from_state_dict(small, "small.pth")
    assert net.dims == ExpNetDims.small()
    out = net(torch.randn(5, 1, 80, 16), torch.randn(5, 64), torch.rand(5, 1))
    assert out.shape == (5, 64) and torch.isfinite(out).all()


def test_golden_audio2exp(reference_dir):
    g = np.load(reference_dir / "sadtalker" / "golden" / "b_audio2exp.npz")
    net = ExpNet.from_state_dict(standin_state(reference_dir, "audio2exp."), MAIN)
    assert net.dims == ExpNetDims()
    mels = torch.from_numpy(g["indiv_mels"]).flatten(0, 1)
    with torch.no_grad():
        emb = net.audio_encoder.embed(mels).numpy()
        exp = net(mels, torch.from_numpy(g["ref"][0, :, :64]), torch.from_numpy(g["ratio"][0])).numpy()
    expected = g["exp_coeff_pred"][0]
    assert np.abs(emb - g["audio_embedding"]).max() <= 1e-5 * np.abs(g["audio_embedding"]).max()
    assert np.abs(exp - expected).max() <= 1e-5 * np.abs(expected).max()


def test_frames_are_independent():
    net = ExpNet(ExpNetDims.small()).eval()
    mels, ref, blink = torch.randn(6, 1, 80, 16), torch.randn(6, 64), torch.rand(6, 1)
    with torch.no_grad():
        together = net(mels, ref, blink)
        apart = torch.cat([net(mels[i:i + 1], ref[i:i + 1], blink[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("change", "message"), [
    ("missing", "missing tensor 'mapping1.bias'"),
    ("extra", "unexpected tensor 'mapping2.weight'"),
    ("shape", "tensor 'audio_encoder.4.conv_block.0.weight' has shape"),
])
def test_strict_loading_names_file_and_tensor(change, message):
    state = dict(ExpNet(ExpNetDims.small()).state_dict())
    if change == "missing":
        del state["mapping1.bias"]
    elif change == "extra":
        state["mapping2.weight"] = torch.zeros(3)
    else:
        state["audio_encoder.4.conv_block.0.weight"] = torch.zeros(8, 8, 5, 5)
    with pytest.raises(CheckpointError, match=f"^auido2exp_00300-model.pth: {message}"):
        ExpNet.from_state_dict(state, "auido2exp_00300-model.pth")
