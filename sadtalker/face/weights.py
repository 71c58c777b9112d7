"""The official face-model weight files: their names, where they are found, and which part of each file is
the model's state dict (SPEC §1). Files are read by `sadtalker.weightfile` (torch pickle or the pickle-free
safetensors form under the same name) into one flat `name -> tensor` mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..statedict import load_strict
from ..weightfile import read_weights, sub_state

DETECTOR_FILE = "detection_Resnet50_Final.pth"
LANDMARK_FILE = "alignment_WFLW_4HG.pth"
PARSING_FILE = "parsing_parsenet.pth"
GFPGAN_FILE = "GFPGANv1.4.pth"
FACE_FILES = (DETECTOR_FILE, LANDMARK_FILE, PARSING_FILE, GFPGAN_FILE)


def flat_state(flat: Mapping[str, torch.Tensor], source: str = "") -> dict[str, torch.Tensor]:
    """ParseNet: the flat state dict as stored."""
    return dict(flat)


def detector_state(flat: Mapping[str, torch.Tensor], source: str = "") -> dict[str, torch.Tensor]:
    """RetinaFace: flat state dict; a leading `module.` (DataParallel) is removed where present."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in flat.items()}


def landmark_state(flat: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """FAN: the `['state_dict']` entry, no renaming."""
    return sub_state(flat, ("state_dict",), source)


def gfpgan_state(flat: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """GFPGAN: `['params_ema']` when present, else `['params']`."""
    return sub_state(flat, ("params_ema", "params"), source)


def build_and_load(make: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Build a module (dims already inferred) and load it strictly; eval mode."""
    return load_strict(make(), state, source)

def face_dirs_of(checkpoint_dir: Path, face_dirs: Sequence[Path] | None = None) -> list[Path]:
    """Where face files are looked for, in order: `face_dirs` when given, else the checkpoint directory and
    its `gfpgan/weights/` (where SadTalker's script puts them)."""
    if face_dirs is not None:
        return [Path(d) for d in face_dirs]
    return [Path(checkpoint_dir), Path(checkpoint_dir) / "gfpgan" / "weights"]


def find_face_file(checkpoint_dir: Path, name: str, face_dirs: Sequence[Path] | None = None) -> Path | None:
    """`name` in the first folder of `face_dirs_of(checkpoint_dir, face_dirs)` that holds it."""
    for folder in face_dirs_of(checkpoint_dir, face_dirs):
        if (folder / name).is_file():
            return folder / name
    return None


def load_network(cls: type, path: Path, select: Callable[[Mapping[str, torch.Tensor], str], dict[str, torch.Tensor]],
                 device: torch.device) -> nn.Module:
    """Read an official file, pick the model's state dict with `select`, build `cls` strictly, move it."""
    source = str(path)
    return cls.from_state_dict(select(read_weights(path), source), source).to(device)
