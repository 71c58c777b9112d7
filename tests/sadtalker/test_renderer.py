"""Face-renderer networks: official tensor names, dims inferred from shapes, spectral norm, forward shapes."""

from __future__ import annotations

import json

import pytest
import torch

from sadtalker.errors import CheckpointError
from sadtalker.generator import GeneratorDims, SPADEGenerator, SpectralConv2d
from sadtalker.head_pose import HEEstimator, HEEstimatorDims
from sadtalker.kp_detector import KPDetector, KPDetectorDims
from sadtalker.mapping import MappingDims, MappingNet


def _manifest(reference_dir, name: str, prefix: str) -> dict[str, tuple[int, ...]]:
    entries = json.loads((reference_dir / "sadtalker" / "manifests" / f"{name}.json").read_text())["tensors"]
    return {e["name"][len(prefix):]: tuple(e["shape"]) for e in entries if e["name"].startswith(prefix)}


def _shapes(net: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize(("build", "file", "prefix"), [
    (KPDetector, "SadTalker_V0.0.2_256.safetensors", "kp_extractor."),
    (SPADEGenerator, "SadTalker_V0.0.2_256.safetensors", "generator."),
    (MappingNet, "mapping_00229-model.pth.tar", "mapping."),
    (lambda: MappingNet(MappingDims(coeff_nc=73)), "mapping_00109-model.pth.tar", "mapping."),
    (HEEstimator, "facevid2vid_00189-model.pth.tar", "he_estimator."),
])
def test_default_dims_list_exactly_the_official_tensors(reference_dir, build, file, prefix):
    with torch.device("meta"):  # shapes only, no memory
        net = build()
    assert _shapes(net) == _manifest(reference_dir, file, prefix)


@pytest.mark.parametrize(("cls", "dims"), [
    (KPDetector, KPDetectorDims.small()),
    (SPADEGenerator, GeneratorDims.small()),
    (MappingNet, MappingDims.small(73)),
    (HEEstimator, HEEstimatorDims.small()),
])
def test_dims_are_inferred_back_from_the_tensor_shapes(cls, dims):
    torch.manual_seed(0)
    net = cls(dims)
    state = net.state_dict()
    loaded = cls.from_state_dict(state, "net.safetensors")
    assert loaded.dims == dims
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, state[name])


def test_loading_names_the_file_and_the_first_offending_tensor():
    state = MappingNet(MappingDims.small()).state_dict()
    broken = dict(state)
    del broken["fc_t.bias"]
    with pytest.raises(CheckpointError, match=r"m\.pth: missing tensor 'fc_t\.bias'"):
        MappingNet.from_state_dict(broken, "m.pth")
    with pytest.raises(CheckpointError, match=r"m\.pth: unexpected tensor 'fc_extra\.weight'"):
        MappingNet.from_state_dict({**state, "fc_extra.weight": torch.zeros(3)}, "m.pth")
    with pytest.raises(CheckpointError, match=r"m\.pth: tensor 'fc_exp\.weight' has shape \(44, 128\)"):
        MappingNet.from_state_dict({**state, "fc_exp.weight": torch.zeros(44, 128)}, "m.pth")
    with pytest.raises(CheckpointError, match=r"m\.pth: missing tensor 'first\.0\.weight'"):
        MappingNet.from_state_dict({}, "m.pth")


def test_spectral_conv_divides_by_u_dot_w_v_without_power_iteration():
    conv = SpectralConv2d(4, 6, kernel_size=3, padding=1)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, 3, 3, generator=g)
    u, v = torch.randn(6, generator=g), torch.randn(36, generator=g)
    conv.load_state_dict({"weight_orig": w, "weight_u": u, "weight_v": v, "bias": torch.zeros(6)})
    sigma = torch.dot(u, w.reshape(6, -1) @ v)
    torch.testing.assert_close(conv.weight, w / sigma)
    assert "weight" not in conv.state_dict()  # names stay weight_orig/_u/_v
    torch.testing.assert_close(conv(torch.ones(1, 4, 5, 5)), torch.nn.functional.conv2d(
        torch.ones(1, 4, 5, 5), w / sigma, padding=1))
    torch.testing.assert_close(conv.weight_u, u)  # no power iteration at inference
    conv(torch.ones(1, 4, 5, 5))
    torch.testing.assert_close(conv.weight_u, u)


def test_small_networks_run_with_the_documented_shapes():
    torch.manual_seed(0)
    kp_net, gen = KPDetector(KPDetectorDims.small()).eval(), SPADEGenerator(GeneratorDims.small()).eval()
    mapping = MappingNet(MappingDims.small()).eval()
    image = torch.rand(2, 3, 128, 128)  # the 5 hourglass halvings need >= 128 px
    with torch.inference_mode():
        kp = kp_net(image)
        assert kp.shape == (2, 15, 3) and kp.abs().max() <= 1
        motion = mapping(torch.randn(2, 70, 27))
        assert {k: tuple(v.shape) for k, v in motion.items()} == {
            "yaw": (2, 66), "pitch": (2, 66), "roll": (2, 66), "t": (2, 3), "exp": (2, 45)}
        out = gen(image, kp, kp + 0.05)
        assert out["prediction"].shape == (2, 3, 128, 128)
        assert out["occlusion_map"].shape == (2, 1, 32, 32)
        assert out["mask"].shape == (2, 16, 2, 32, 32)  # N x K+1 x D x H x W
        assert out["prediction"].min() >= 0 and out["prediction"].max() <= 1  # sigmoid
        feature, compressed = gen.encode_source(image[:1])
        split = gen.animate(feature, compressed, kp[:1], torch.cat([kp[:1] + 0.05, kp[:1]]))
        torch.testing.assert_close(split["prediction"][0], gen(image[:1], kp[:1], kp[:1] + 0.05)["prediction"][0],
                                   rtol=1e-3, atol=1e-3)  # untrained spectral weights amplify float noise



def test_legacy_head_pose_estimator_runs_and_keeps_the_swapped_outputs():
    torch.manual_seed(0)
    net = HEEstimator(HEEstimatorDims.small()).eval()
    with torch.no_grad():
        net.fc_roll.weight.zero_()
        net.fc_roll.bias.copy_(torch.arange(66.0))
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "yaw": (1, 66), "pitch": (1, 66), "roll": (1, 66), "t": (1, 3), "exp": (1, 45)}
    torch.testing.assert_close(out["yaw"][0], torch.arange(66.0))  # fc_roll is reported as "yaw" (reference quirk)
    assert not torch.equal(out["roll"][0], torch.arange(66.0))
