"""Stand-in face-model files under the official names, values from the reference's `detweights.fill`.

Written in the pickle-free flattened safetensors form our loader sniffs (the official files are torch pickles):
names as stored in the official file (`module.` + key for the detector, `state_dict.` + key for FAN,
`params_ema.` + key for GFPGAN, plain keys for ParseNet). Nested files carry the metadata
`sadtalker_flattened_torch_dict=1` and `dict_keys`, as `detweights.write_checkpoint` writes them; flat files
carry `sadtalker_flat_state_dict=1` instead (their first name component is not a dict key).
`small=True` writes each network's `Dims.small()` shapes (same names) for fast tests; stand-in networks
compute the right function on meaningless weights, so they detect no real face.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from safetensors.torch import save_file

from .fan import FAN, FANDims
from .gfpgan import GFPGANDims, GFPGANv1Clean
from .parsenet import ParseNet, ParseNetDims
from .retinaface import RetinaFace, RetinaFaceDims
from .weights import DETECTOR_FILE, GFPGAN_FILE, LANDMARK_FILE, PARSING_FILE

# official file -> (name prefix, nested dict key or None, builder of the small network)
LAYOUT = {
    DETECTOR_FILE: ("module.", None, lambda: RetinaFace(RetinaFaceDims.small())),
    LANDMARK_FILE: ("state_dict.", "state_dict", lambda: FAN(FANDims.small())),
    PARSING_FILE: ("", None, lambda: ParseNet(ParseNetDims.small())),
    GFPGAN_FILE: ("params_ema.", "params_ema", lambda: GFPGANv1Clean(GFPGANDims.small())),
}


def load_detweights(reference_dir: Path) -> ModuleType:
    path = Path(reference_dir) / "sadtalker" / "detweights.py"
    spec = importlib.util.spec_from_file_location("_face_standin_detweights", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path} not found (reference_dir should hold sadtalker/detweights.py)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tensor_entries(name: str, reference_dir: Path, small: bool) -> list[tuple[str, list[int], str]]:
    """(stored name, shape, dtype) of every tensor of an official file: the manifest, or our small network."""
    prefix, _, build = LAYOUT[name]
    if not small:
        manifest = Path(reference_dir) / "facemodels" / "manifests" / f"{name}.json"
        return [(t["name"], t["shape"], t["dtype"]) for t in json.loads(manifest.read_text())["tensors"]]
    state = build().state_dict()
    return [(prefix + k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]


def write_face_standins(out_dir: str | Path, reference_dir: str | Path, *, small: bool, seed: int = 0) -> Path:
    """Write the four face-model files into `out_dir` (created); returns `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    detweights = load_detweights(Path(reference_dir))
    for name, (_, dict_key, _) in LAYOUT.items():
        entries = tensor_entries(name, Path(reference_dir), small)
        values = detweights.fill(entries, seed)
        tensors = {k: torch.from_numpy(np.array(v, copy=True)).reshape(shape)
                   for (k, shape, _), v in zip(entries, values.values(), strict=True)}
        meta = {"generator": "sadtalker.face.standin (detweights.fill)", "base_seed": str(int(seed)),
                "source_manifest": name, "small": str(bool(small)).lower()}
        meta.update({"sadtalker_flattened_torch_dict": "1", "dict_keys": dict_key} if dict_key
                    else {"sadtalker_flat_state_dict": "1"})
        save_file(tensors, str(out / name), metadata=meta)
    return out
