"""ReconNet (3DMM ResNet-50): official tensor names, strict loading, golden output with stand-in weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_weights import MAIN, manifest_shapes, standin_state

from sadtalker import CheckpointError
from sadtalker.face3d import ReconNet, ReconNetDims


@pytest.mark.parametrize(("file", "prefix"), [(MAIN, "face_3drecon."), ("epoch_20.pth", "net_recon.")])
def test_names_and_shapes_are_the_official_ones(reference_dir, file, prefix):
    ours = {k: tuple(v.shape) for k, v in ReconNet().state_dict().items()}
    assert ours == manifest_shapes(reference_dir, file, prefix)


def test_small_dims_run_with_the_same_names():
    small = ReconNet(ReconNetDims.small()).eval()
    assert list(small.state_dict()) == list(ReconNet().state_dict())
    net = ReconNet.from_state_dict(small.state_dict(), "small")
    assert net.dims == ReconNetDims.small()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 257) and torch.isfinite(out).all()


def test_golden_face3d_recon(reference_dir):
    g = np.load(reference_dir / "sadtalker" / "golden" / "g_face3d_recon.npz")
    net = ReconNet.from_state_dict(standin_state(reference_dir, "face_3drecon."), MAIN)
    assert net.dims == ReconNetDims()
    img = torch.from_numpy(g["image_uint8"]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        coeff = net(img).numpy()
    assert np.abs(coeff - g["coeff_257"]).max() <= 1e-5 * np.abs(g["coeff_257"]).max()


def test_strict_loading_names_file_and_tensor():
    state = dict(ReconNet(ReconNetDims.small()).state_dict())
    state["backbone.layer3.6.conv1.weight"] = torch.zeros(32, 128, 1, 1)  # a 7th block layer3 does not have
    with pytest.raises(CheckpointError, match="^epoch_20.pth: unexpected tensor 'backbone.layer3.6.conv1.weight'"):
        ReconNet.from_state_dict(state, "epoch_20.pth")
    state = dict(ReconNet(ReconNetDims.small()).state_dict())
    del state["backbone.bn1.running_var"]
    with pytest.raises(CheckpointError, match="missing tensor 'backbone.bn1.running_var'"):
        ReconNet.from_state_dict(state, "epoch_20.pth")
    state = dict(ReconNet(ReconNetDims.small()).state_dict())
    state["final_layers.1.weight"] = torch.zeros(64, 100, 1, 1)
    with pytest.raises(CheckpointError, match="'final_layers.1.weight' has shape"):
        ReconNet.from_state_dict(state, "epoch_20.pth")
