"""Loading the official face-model files: both containers, the per-file rules, and refusals of broken files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from sadtalker.errors import CheckpointError
from sadtalker.face.fan import FAN, FANDims
from sadtalker.face.gfpgan import GFPGANDims, GFPGANv1Clean
from sadtalker.face.parsenet import ParseNet
from sadtalker.face.retinaface import RetinaFace, RetinaFaceDims
from sadtalker.face.standin import LAYOUT, tensor_entries
from sadtalker.face.weights import (
    FACE_FILES,
    detector_state,
    find_face_file,
    flat_state,
    gfpgan_state,
    landmark_state,
    load_network,
)
from sadtalker.weightfile import read_weights, safetensors_metadata

NETWORKS = {
    "detection_Resnet50_Final.pth": (RetinaFace, detector_state),
    "alignment_WFLW_4HG.pth": (FAN, landmark_state),
    "parsing_parsenet.pth": (ParseNet, flat_state),
    "GFPGANv1.4.pth": (GFPGANv1Clean, gfpgan_state),
}


@pytest.mark.parametrize("name", FACE_FILES)
def test_full_size_names_and_shapes_match_the_manifest(name, reference_dir):
    cls, _ = NETWORKS[name]
    prefix = LAYOUT[name][0]
    manifest = json.loads((reference_dir / "facemodels" / "manifests" / f"{name}.json").read_text())
    expected = {t["name"]: tuple(t["shape"]) for t in manifest["tensors"]}
    ours = {prefix + k: tuple(v.shape) for k, v in cls().state_dict().items()}
    assert ours == expected
    assert [e[0] for e in tensor_entries(name, reference_dir, small=False)] == list(expected)


@pytest.mark.parametrize("name", FACE_FILES)
def test_small_standins_load_with_inferred_dims(name, small_face_dir):
    cls, select = NETWORKS[name]
    path = small_face_dir / "gfpgan" / "weights" / name
    net = load_network(cls, path, select, torch.device("cpu"))
    assert net.dims == type(net.dims).small()
    meta = safetensors_metadata(path)
    assert meta["base_seed"] == "0"
    assert ("dict_keys" in meta) == (name in ("alignment_WFLW_4HG.pth", "GFPGANv1.4.pth"))


def _small_state(name, small_face_dir):
    cls, select = NETWORKS[name]
    return select(read_weights(small_face_dir / "gfpgan" / "weights" / name), name)


def test_torch_pickles_in_the_official_layouts_load(tmp_path, small_face_dir):
    fan = _small_state("alignment_WFLW_4HG.pth", small_face_dir)
    torch.save({"state_dict": fan, "epoch": 7, "optimizer": {"lr": 0.1}}, tmp_path / "fan.pth")
    net = load_network(FAN, tmp_path / "fan.pth", landmark_state, torch.device("cpu"))
    assert torch.equal(net.conv1.conv.weight, fan["conv1.conv.weight"])

    det = _small_state("detection_Resnet50_Final.pth", small_face_dir)
    for stored in (det, {"module." + k: v for k, v in det.items()}):  # the prefix is stripped if present
        torch.save(stored, tmp_path / "det.pth")
        net = load_network(RetinaFace, tmp_path / "det.pth", detector_state, torch.device("cpu"))
        assert net.dims == RetinaFaceDims.small()

    gfp = _small_state("GFPGANv1.4.pth", small_face_dir)
    other = {k: torch.zeros_like(v) for k, v in gfp.items()}
    torch.save({"params": other, "params_ema": gfp}, tmp_path / "g.pth")
    net = load_network(GFPGANv1Clean, tmp_path / "g.pth", gfpgan_state, torch.device("cpu"))
    assert torch.equal(net.final_linear.weight, gfp["final_linear.weight"])  # params_ema preferred
    torch.save({"params": gfp}, tmp_path / "g.pth")
    assert load_network(GFPGANv1Clean, tmp_path / "g.pth", gfpgan_state, torch.device("cpu")).dims == \
        GFPGANDims.small()


def test_missing_counters_are_tolerated(small_face_dir, tmp_path):
    fan = {k: v for k, v in _small_state("alignment_WFLW_4HG.pth", small_face_dir).items()
           if not k.endswith("num_batches_tracked")}
    assert FAN.from_state_dict(fan, "fan").dims == FANDims.small()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04 truncated zip"])
def test_garbage_files_are_refused_by_name(tmp_path, content):
    path = tmp_path / "GFPGANv1.4.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="GFPGANv1.4.pth"):
        read_weights(path)


def test_truncated_files_are_refused(tmp_path, small_face_dir):
    for name in ("parsing_parsenet.pth", "zip.pth"):
        src = small_face_dir / "gfpgan" / "weights" / "parsing_parsenet.pth"
        if name == "zip.pth":
            torch.save(_small_state("parsing_parsenet.pth", small_face_dir), tmp_path / "full.pth")
            src = tmp_path / "full.pth"
        data = src.read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=name):
            read_weights(tmp_path / name)


def test_pickles_with_code_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "detection_Resnet50_Final.pth"
    with path.open("wb") as f:
        pickle.dump({"x": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="detection_Resnet50_Final.pth"):
        read_weights(path)


def test_mismatched_state_dicts_name_the_first_offending_tensor(small_face_dir):
    state = _small_state("parsing_parsenet.pth", small_face_dir)
    missing = dict(state)
    del missing["body.3.conv1.conv2d.weight"]
    with pytest.raises(CheckpointError, match=r"parsing_parsenet.pth: missing tensor 'body.3.conv1.conv2d.weight'"):
        ParseNet.from_state_dict(missing, "parsing_parsenet.pth")
    extra = dict(state, **{"head.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="unexpected tensor 'head.weight'"):
        ParseNet.from_state_dict(extra, "parsing_parsenet.pth")
    shaped = dict(state, **{"body.0.conv1.norm.norm.bias": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"'body.0.conv1.norm.norm.bias' has shape \(3,\)"):
        ParseNet.from_state_dict(shaped, "parsing_parsenet.pth")
    with pytest.raises(CheckpointError, match="missing tensor 'encoder.0.conv2d.weight'"):
        ParseNet.from_state_dict({}, "parsing_parsenet.pth")


def test_nested_files_without_their_key_are_refused(small_face_dir):
    flat = read_weights(small_face_dir / "gfpgan" / "weights" / "parsing_parsenet.pth")
    with pytest.raises(CheckpointError, match="'params_ema' or 'params'"):
        gfpgan_state(flat, "GFPGANv1.4.pth")
    with pytest.raises(CheckpointError, match="'state_dict'"):
        landmark_state(flat, "alignment_WFLW_4HG.pth")


def test_files_are_found_in_the_dir_or_gfpgan_weights(tmp_path):
    assert find_face_file(tmp_path, "GFPGANv1.4.pth") is None
    (tmp_path / "gfpgan" / "weights").mkdir(parents=True)
    (tmp_path / "gfpgan" / "weights" / "GFPGANv1.4.pth").write_bytes(b"x")
    assert find_face_file(tmp_path, "GFPGANv1.4.pth") == tmp_path / "gfpgan" / "weights" / "GFPGANv1.4.pth"
    (tmp_path / "GFPGANv1.4.pth").write_bytes(b"x")
    assert find_face_file(tmp_path, "GFPGANv1.4.pth") == tmp_path / "GFPGANv1.4.pth"


def test_face_dirs_passed_in_are_searched_in_their_order(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    second.mkdir()
    (second / "GFPGANv1.4.pth").write_bytes(b"x")
    assert find_face_file(tmp_path, "GFPGANv1.4.pth", [first, second]) == second / "GFPGANv1.4.pth"
    first.mkdir()
    (first / "GFPGANv1.4.pth").write_bytes(b"x")
    assert find_face_file(tmp_path, "GFPGANv1.4.pth", [first, second]) == first / "GFPGANv1.4.pth"
    (tmp_path / "GFPGANv1.4.pth").write_bytes(b"x")  # the checkpoint dir is not searched when dirs are given
    assert find_face_file(tmp_path, "GFPGANv1.4.pth", [second]) == second / "GFPGANv1.4.pth"
