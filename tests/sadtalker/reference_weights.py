"""The reference material's stand-in weights and manifest shapes, for network-level tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

MAIN = "SadTalker_V0.0.2_256.safetensors"


def manifest_shapes(reference_dir: Path, file: str, prefix: str) -> dict[str, tuple]:
    """name -> shape of the tensors of an official file under `prefix` (prefix stripped)."""
    man = json.loads((reference_dir / "sadtalker" / "manifests" / f"{file}.json").read_text())
    return {t["name"][len(prefix):]: tuple(t["shape"]) for t in man["tensors"] if t["name"].startswith(prefix)}


def standin_state(reference_dir: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The golden set's weights (detweights, base seed 0) of one block of the main file, prefix stripped."""
    spec = importlib.util.spec_from_file_location("detweights", reference_dir / "sadtalker" / "detweights.py")
    detweights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(detweights)
    man = json.loads((reference_dir / "sadtalker" / "manifests" / f"{MAIN}.json").read_text())
    entries = [e for e in man["tensors"] if e["name"].startswith(prefix)]
    return {k[len(prefix):]: torch.from_numpy(v) for k, v in detweights.fill(entries, 0).items()}
