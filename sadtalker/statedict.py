"""Strict state-dict helpers shared by every network's `from_state_dict`: read dims from tensor shapes and
load a checkpoint's tensors so that nothing is missing, unexpected or mis-shaped.

Errors are CheckpointError naming the file (`source`) and the first offending tensor: a wrong, truncated or
foreign file never loads partially.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError

COUNTER_SUFFIX = "num_batches_tracked"  # BatchNorm counters: never used in eval mode; torch tolerates their absence


def require(state: Mapping[str, object], name: str, source: str) -> object:
    """`state[name]`, or CheckpointError naming the file and the tensor."""
    if name not in state:
        raise CheckpointError(f"{source}: missing tensor '{name}'")
    return state[name]


def tensor_shape(state: Mapping[str, object], name: str, source: str) -> tuple[int, ...]:
    """Shape of a tensor the dims inference needs."""
    return tuple(np.shape(require(state, name, source)))


def tensor_dim(state: Mapping[str, object], name: str, source: str, axis: int = 0) -> int:
    """Size of `state[name]` along `axis`; CheckpointError if it is missing or too flat."""
    shape = tensor_shape(state, name, source)
    if len(shape) <= axis or shape[axis] < 1:
        raise CheckpointError(f"{source}: tensor '{name}' has shape {shape}, which no network of this kind has")
    return int(shape[axis])


def count_indexed(state: Mapping[str, object], prefix: str) -> int:
    """Number of consecutive children `prefix{i}.` present in a state dict (i = 0, 1, ...)."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n


def _as_tensor(value: object) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def load_strict(module: nn.Module, state: Mapping[str, object], source: str) -> nn.Module:
    """Copy `state` into `module` (eval mode) and return it; every tensor must exist on both sides.

    Values may be torch tensors or numpy arrays. BatchNorm counters may be absent, and numpy-written (1,)
    counters are accepted for 0-d ones; any other missing, unexpected, mis-shaped or float/int-swapped
    tensor raises CheckpointError naming `source` and the tensor.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(COUNTER_SUFFIX)]
    if missing:
        shape = tuple(own[missing[0]].shape)
        raise CheckpointError(f"{source}: missing tensor '{missing[0]}' (expected shape {shape}; "
                              f"{len(missing)} missing in all)")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor '{unexpected[0]}' ({len(unexpected)} unexpected in all)")
    tensors = {}
    for name, value in state.items():
        t, ref = _as_tensor(value), own[name]
        counter = ref.dim() == 0 and t.numel() == 1 and name.endswith(COUNTER_SUFFIX)
        if tuple(t.shape) != tuple(ref.shape) and not counter:
            raise CheckpointError(f"{source}: tensor '{name}' has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
        if t.is_floating_point() != ref.is_floating_point():
            raise CheckpointError(f"{source}: tensor '{name}' has dtype {t.dtype}, expected {ref.dtype}")
        tensors[name] = t.reshape(ref.shape)
    for name in own:  # absent counters keep the module's own value
        tensors.setdefault(name, own[name])
    module.load_state_dict(tensors, strict=True)
    return module.eval()
