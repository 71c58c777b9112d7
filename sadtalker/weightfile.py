"""Reading weight files, whatever their container: torch pickles (zip or legacy format, read with
`torch.load(weights_only=True)`, so no code from the file runs) or safetensors (the official SadTalker release
files, and the pickle-free form of a pickled file that stand-in writers store under the official name).

Every file becomes one flat dict of tensors named `<dict key>.<state-dict key>` (nested dicts are flattened;
non-tensor entries such as `epoch` are dropped). Networks then take their part with `sub_state`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointError, MissingCheckpoints

ZIP_MAGIC = b"PK\x03\x04"  # torch.save since 1.6
PICKLE_PROTOCOL_OPCODE = 0x80  # legacy torch.save files start with a pickle protocol opcode


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a weight file under flat names. MissingCheckpoints if absent; CheckpointError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpoints(str(path.parent), [path.name])
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(ZIP_MAGIC) or (head[:1] and head[0] == PICKLE_PROTOCOL_OPCODE):
        return _read_torch(path)
    if _looks_like_safetensors(path, head):
        return _read_safetensors(path)
    raise CheckpointError(f"{path}: neither a torch checkpoint nor a safetensors file (truncated or foreign?)")


def sub_state(flat: Mapping[str, torch.Tensor], keys: tuple[str, ...], source: str) -> dict[str, torch.Tensor]:
    """The state dict stored under the first of `keys` present (`mapping.`, `params_ema.`, ...), key stripped."""
    for key in keys:
        prefix = key + "."
        sub = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
        if sub:
            return sub
    found = ", ".join(sorted({k.split(".", 1)[0] for k in flat})[:5]) or "nothing"
    wanted = " or ".join(repr(k) for k in keys)
    raise CheckpointError(f"{source}: no {wanted} state dict in this file (found: {found}); is it the right file?")


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The metadata dict of a safetensors file (empty when absent)."""
    with Path(path).open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return dict(header.get("__metadata__", {}))


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < header_len <= path.stat().st_size - 8


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, foreign pickle, disallowed globals
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated, foreign or unsafe pickle?) "
                              f"({type(e).__name__}: {e})") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    flat: dict[str, torch.Tensor] = {}
    _flatten(obj, "", flat)
    return flat


def _flatten(obj: Mapping, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, Mapping):
            _flatten(value, name + ".", out)
        # other entries (epoch numbers, optimizer settings) are not weights


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or foreign?) "
                              f"({type(e).__name__}: {e})") from e
