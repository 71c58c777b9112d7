"""The shared strict loader: what it tolerates (BatchNorm counters) and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sadtalker import CheckpointError
from sadtalker.statedict import count_indexed, load_strict, tensor_dim


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))


def _state() -> dict:
    return {k: v + 0.5 if v.is_floating_point() else v.clone() for k, v in _net().state_dict().items()}


def test_loads_every_tensor_in_eval_mode():
    state = _state()
    net = load_strict(_net().train(), state, "f.pth")
    assert not net.training
    assert torch.equal(net.state_dict()["0.weight"], state["0.weight"])


def test_counters_may_be_absent_or_numpy_shaped():
    state = _state()
    del state["1.num_batches_tracked"]
    load_strict(_net(), state, "f.pth")
    state["1.num_batches_tracked"] = np.zeros((1,), dtype=np.int64)  # what numpy writers produce
    load_strict(_net(), state, "f.pth")


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("0.bias"), "f.pth: missing tensor '0.bias'"),
    (lambda s: s.update(extra=torch.zeros(1)), "f.pth: unexpected tensor 'extra'"),
    (lambda s: s.update({"0.weight": torch.zeros(4, 1, 5, 5)}), "f.pth: tensor '0.weight' has shape"),
    (lambda s: s.update({"1.running_var": torch.ones(4, dtype=torch.int64)}), "has dtype torch.int64"),
])
def test_refuses_with_the_file_and_tensor_named(change, message):
    state = _state()
    change(state)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")):
        load_strict(_net(), state, "f.pth")


def test_dims_from_names_and_shapes():
    state = {"enc0.w": np.zeros((8, 2)), "enc1.w": np.zeros(3), "enc3.w": np.zeros(1)}
    assert count_indexed(state, "enc") == 2
    assert tensor_dim(state, "enc0.w", "f", axis=1) == 2
    with pytest.raises(CheckpointError, match="f: missing tensor 'nope'"):
        tensor_dim(state, "nope", "f")
