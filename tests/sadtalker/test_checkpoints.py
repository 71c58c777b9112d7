"""Checkpoint loading: file choice, content sniffing, strict loading and the errors users see."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sadtalker.checkpoints import (
    SadTalkerModel,
    load_model,
    missing_files,
    required_files,
)
from sadtalker.errors import CheckpointError, MissingCheckpoints
from sadtalker.generator import SPADEGenerator
from sadtalker.kp_detector import KPDetector
from sadtalker.mapping import MappingNet
from sadtalker.standin import write_standins
from sadtalker.weightfile import read_weights, sub_state

MAIN = "SadTalker_V0.0.2_256.safetensors"
CROP_MAPPING = "mapping_00229-model.pth.tar"
FULL_MAPPING = "mapping_00109-model.pth.tar"
LEGACY = ["auido2pose_00140-model.pth", "auido2exp_00300-model.pth", "facevid2vid_00189-model.pth.tar", "epoch_20.pth"]


@pytest.fixture(scope="module")
def legacy_checkpoints(tmp_path_factory, reference_dir) -> Path:
    out = tmp_path_factory.mktemp("legacy")
    write_standins(out, reference_dir, small=True, legacy=True)
    (out / MAIN).unlink()
    return out


@pytest.fixture
def ckpt(tmp_path, small_checkpoints) -> Path:
    """A private copy of the small set that a test may break."""
    out = tmp_path / "ckpt"
    shutil.copytree(small_checkpoints, out)
    return out


def test_required_and_missing_files_follow_the_options(tmp_path, small_checkpoints):
    assert [p.name for p in required_files(tmp_path)] == [MAIN, CROP_MAPPING]
    assert [p.name for p in required_files(tmp_path, 512, "extfull")] == ["SadTalker_V0.0.2_512.safetensors",
                                                                         FULL_MAPPING]
    assert [p.name for p in required_files(tmp_path, preprocess="resize", old_version=True)] == LEGACY + [CROP_MAPPING]
    assert missing_files(tmp_path) == [MAIN, CROP_MAPPING]
    assert missing_files(tmp_path, preprocesses=("crop", "full")) == [MAIN, CROP_MAPPING, FULL_MAPPING]
    assert missing_files(small_checkpoints, preprocesses=("crop", "full")) == []
    assert missing_files(small_checkpoints, size=512) == ["SadTalker_V0.0.2_512.safetensors"]
    assert missing_files(small_checkpoints, old_version=True) == LEGACY
    with pytest.raises(ValueError, match="preprocess"):
        required_files(tmp_path, preprocess="crop2")


def test_small_set_loads_every_network_once(small_checkpoints):
    model = load_model(small_checkpoints, device="cpu")
    assert isinstance(model, SadTalkerModel)
    assert isinstance(model.kp_detector, KPDetector) and isinstance(model.generator, SPADEGenerator)
    assert type(model.audio2exp).__name__ == "ExpNet" and type(model.audio2pose).__name__ == "PoseVAE"
    assert type(model.face3d).__name__ == "ReconNet"
    assert model.device == torch.device("cpu") and model.dtype == torch.float32 and model.size == 256
    assert set(model.files.values()) == {str(small_checkpoints / MAIN)}
    assert not model.generator.training and not next(model.generator.parameters()).requires_grad
    crop, full = model.mapping("crop"), model.mapping("extfull")
    assert crop.dims.coeff_nc == 70 and full.dims.coeff_nc == 73
    assert model.mapping("resize") is crop
    assert model.files["mapping_73"] == str(small_checkpoints / FULL_MAPPING)


def test_legacy_set_loads_and_is_picked_when_no_safetensors_exist(legacy_checkpoints):
    model = load_model(legacy_checkpoints, device="cpu")
    assert model.files["generator"].endswith("facevid2vid_00189-model.pth.tar")
    assert model.files["audio2pose"].endswith("auido2pose_00140-model.pth")
    assert model.files["face3d"].endswith("epoch_20.pth")
    assert model.mapping("crop").dims.coeff_nc == 70


def test_official_torch_pickles_are_read_with_weights_only(ckpt):
    state = {k: v.clone() for k, v in sub_state(read_weights(ckpt / CROP_MAPPING), ("mapping",), "").items()}  # not the mmap
    torch.save({"mapping": state, "epoch": 229, "optimizer": {"lr": 1e-4, "state": {}}}, ckpt / CROP_MAPPING)
    model = load_model(ckpt, device="cpu")
    for name, tensor in model.mapping("crop").state_dict().items():
        torch.testing.assert_close(tensor, state[name])


def test_missing_files_raise_models_unavailable(tmp_path, ckpt):
    with pytest.raises(MissingCheckpoints) as info:
        load_model(tmp_path, device="cpu")
    assert info.value.code == "models_unavailable" and info.value.missing == [MAIN]
    (ckpt / FULL_MAPPING).unlink()
    model = load_model(ckpt, device="cpu")
    with pytest.raises(MissingCheckpoints, match=FULL_MAPPING):
        model.mapping("full")


def _rewrite_main(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.pop("generator.decoder.conv_img.bias"), r"missing tensor 'decoder\.conv_img\.bias'"),
    (lambda t: t.update({"kp_extractor.extra.weight": torch.zeros(2)}), r"unexpected tensor 'extra\.weight'"),
    (lambda t: t.update({"audio2exp.mapping1.bias": torch.zeros(63)}), r"'mapping1\.bias' has shape \(63,\)"),
    (lambda t: t.update({"wav2lip.conv.weight": torch.zeros(1)}), r"unexpected tensor 'wav2lip\.conv\.weight'"),
    (lambda t: [t.pop(k) for k in [k for k in t if k.startswith("face_3drecon.")]], r"missing tensors 'face_3drecon"),
])
def test_broken_main_file_names_the_file_and_the_tensor(ckpt, change, message):
    _rewrite_main(ckpt / MAIN, change)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(ckpt, device="cpu")
    assert MAIN in str(info.value)


def test_truncated_and_foreign_files_are_refused(ckpt):
    data = (ckpt / MAIN).read_bytes()
    (ckpt / MAIN).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{MAIN}: not a readable safetensors file"):
        load_model(ckpt, device="cpu")
    (ckpt / MAIN).write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(CheckpointError, match=MAIN):
        load_model(ckpt, device="cpu")


@pytest.mark.parametrize("content", ["truncated_pickle", "foreign_pickle", "unsafe_pickle", "plain_safetensors",
                                     "wrong_shape"])
def test_broken_mapping_files_are_refused(ckpt, content):
    path = ckpt / CROP_MAPPING
    state = {k: v.clone() for k, v in sub_state(read_weights(path), ("mapping",), "").items()}  # not backed by the file
    if content == "truncated_pickle":
        torch.save({"mapping": state, "epoch": 1}, path)
        path.write_bytes(path.read_bytes()[:5000])
        match = "not a readable torch checkpoint"
    elif content == "foreign_pickle":
        torch.save({"params_ema": state}, path)
        match = r"no 'mapping' state dict in this file \(found: params_ema\)"
    elif content == "unsafe_pickle":
        torch.save({"mapping": state, "epoch": Path("x")}, path)  # a global that weights_only refuses
        match = "unsafe pickle"
    elif content == "plain_safetensors":
        save_file(state, str(path))
        match = r"no 'mapping' state dict in this file"
    else:
        torch.save({"mapping": {**state, "fc_t.weight": torch.zeros(4, 128)}}, path)
        match = r"tensor 'fc_t\.weight' has shape \(4, 128\), expected \(3, 128\)"
    model = load_model(ckpt, device="cpu")
    with pytest.raises(CheckpointError, match=match) as info:
        model.mapping("crop")
    assert CROP_MAPPING in str(info.value)


def test_mapping_nets_stay_float32_in_a_reduced_precision_model(small_checkpoints):
    model = load_model(small_checkpoints, device="cpu", dtype=torch.bfloat16)  # an fp32 island (precision.py)
    assert isinstance(model.mapping("crop"), MappingNet) and model.dtype == torch.bfloat16
    assert next(model.mapping("crop").parameters()).dtype == torch.float32
