"""Reading the official face-model weight files and strict loading into our modules.

Each official file is a torch pickle (zip or legacy format, read with `weights_only=True`) or, under the same
file name, the pickle-free flattened safetensors form (`<dict_key>.<name>` keys for the nested files). Both
are read into one flat `name -> tensor` mapping using the flattened names; per-file rules then pick the
model's state dict out of it (SPEC §1).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..statedict import load_strict

DETECTOR_FILE = "detection_Resnet50_Final.pth"
LANDMARK_FILE = "alignment_WFLW_4HG.pth"
PARSING_FILE = "parsing_parsenet.pth"
GFPGAN_FILE = "GFPGANv1.4.pth"
FACE_FILES = (DETECTOR_FILE, LANDMARK_FILE, PARSING_FILE, GFPGAN_FILE)

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # legacy (pre-1.6) torch.save files start with a pickle protocol opcode


def read_flat(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a weight file under their flattened names (`state_dict.conv1.conv.weight`, ...)."""
    path = Path(path)
    try:
        head = path.open("rb").read(16)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e})") from e
    if head.startswith(_ZIP_MAGIC) or (head[:1] and head[0] == _PICKLE_PROTO):
        return _read_torch(path)
    if _looks_like_safetensors(path, head):
        return _read_safetensors(path)
    raise CheckpointError(f"{path}: neither a torch checkpoint nor a safetensors file (truncated or foreign)")


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < header_len <= path.stat().st_size - 8


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a broken or foreign file
        raise CheckpointError(f"{path}: not a loadable torch checkpoint ({type(e).__name__}: {e})") from e
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
        raise CheckpointError(f"{path}: damaged safetensors file ({type(e).__name__}: {e})") from e


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The metadata dict of a safetensors file (empty when absent)."""
    with Path(path).open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return dict(header.get("__metadata__", {}))


def flat_state(flat: Mapping[str, torch.Tensor], source: str = "") -> dict[str, torch.Tensor]:
    """ParseNet: the flat state dict as stored."""
    return dict(flat)


def detector_state(flat: Mapping[str, torch.Tensor], source: str = "") -> dict[str, torch.Tensor]:
    """RetinaFace: flat state dict; a leading `module.` (DataParallel) is removed where present."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in flat.items()}


def landmark_state(flat: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """FAN: the `['state_dict']` entry, no renaming."""
    return _sub_dict(flat, ("state_dict",), source)


def gfpgan_state(flat: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """GFPGAN: `['params_ema']` when present, else `['params']`."""
    return _sub_dict(flat, ("params_ema", "params"), source)


def _sub_dict(flat: Mapping[str, torch.Tensor], keys: tuple[str, ...], source: str) -> dict[str, torch.Tensor]:
    for key in keys:
        prefix = key + "."
        sub = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
        if sub:
            return sub
    found = sorted({k.split(".", 1)[0] for k in flat})[:5]
    raise CheckpointError(f"{source}: no {' or '.join(repr(k) for k in keys)} entry (top-level keys: {found})")


def build_and_load(make: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Build a module (dims already inferred) and load it strictly; eval mode."""
    return load_strict(make(), state, source)

def find_face_file(checkpoint_dir: Path, name: str) -> Path | None:
    """`name` in the checkpoint directory or its `gfpgan/weights/` (where SadTalker's script puts them)."""
    for folder in (Path(checkpoint_dir), Path(checkpoint_dir) / "gfpgan" / "weights"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_network(cls: type, path: Path, select: Callable[[Mapping[str, torch.Tensor], str], dict[str, torch.Tensor]],
                 device: torch.device) -> nn.Module:
    """Read an official file, pick the model's state dict with `select`, build `cls` strictly, move it."""
    source = str(path)
    return cls.from_state_dict(select(read_flat(path), source), source).to(device)
