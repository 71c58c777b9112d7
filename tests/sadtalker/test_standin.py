"""Stand-in checkpoint sets: official names and containers, detweights values, narrow or full shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from sadtalker.checkpoints import load_model
from sadtalker.standin import load_detweights, write_standins


def _header(path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    with safe_open(str(path), framework="np") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, f.metadata()  # noqa: SIM118


def _manifest(reference_dir, name: str) -> dict[str, tuple[int, ...]]:
    entries = json.loads((reference_dir / "sadtalker" / "manifests" / f"{name}.json").read_text())["tensors"]
    return {e["name"]: tuple(e["shape"]) for e in entries}


def test_small_set_has_the_official_names_with_narrow_shapes(small_checkpoints, reference_dir):
    names = sorted(p.name for p in small_checkpoints.iterdir())
    assert names == ["SadTalker_V0.0.2_256.safetensors", "mapping_00109-model.pth.tar", "mapping_00229-model.pth.tar"]
    for name in names:
        shapes, meta = _header(small_checkpoints / name)
        official = _manifest(reference_dir, name)
        assert set(shapes) == set(official)
        assert sum(np.prod(s) for s in shapes.values()) < sum(np.prod(s) for s in official.values()) / 20
        if name.endswith(".tar"):
            assert meta["sadtalker_flattened_torch_dict"] == "1" and meta["dict_keys"] == "mapping"


def test_values_follow_the_detweights_rules(small_checkpoints, reference_dir):
    detweights = load_detweights(reference_dir)
    path = small_checkpoints / "mapping_00229-model.pth.tar"
    with safe_open(str(path), framework="np") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    expected = detweights.fill([(k, v.shape, str(v.dtype)) for k, v in stored.items()], 0)
    for name, value in stored.items():
        np.testing.assert_array_equal(value, expected[name])


def test_seed_changes_the_values(tmp_path, reference_dir, small_checkpoints):
    other = write_standins(tmp_path, reference_dir, small=True, seed=5)
    with safe_open(str(other / "mapping_00229-model.pth.tar"), "np") as a, \
            safe_open(str(small_checkpoints / "mapping_00229-model.pth.tar"), "np") as b:
        assert not np.array_equal(a.get_tensor("mapping.fc_t.weight"), b.get_tensor("mapping.fc_t.weight"))


def test_face_models_are_written_beside_when_asked(tmp_path, reference_dir):
    out = write_standins(tmp_path, reference_dir, small=True, face_models=True)
    weights = sorted(p.name for p in (out / "gfpgan" / "weights").iterdir())
    assert weights == ["GFPGANv1.4.pth", "alignment_WFLW_4HG.pth", "detection_Resnet50_Final.pth",
                       "parsing_parsenet.pth"]


@pytest.mark.slow
def test_full_set_matches_the_manifests_and_loads(full_checkpoints, reference_dir):
    for name in ("SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar", "mapping_00109-model.pth.tar"):
        shapes, _ = _header(full_checkpoints / name)
        assert shapes == _manifest(reference_dir, name)
    model = load_model(full_checkpoints, device="cpu")
    assert model.mapping("full").dims.descriptor_nc == 1024
