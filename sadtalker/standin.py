"""Stand-in checkpoint sets: the official file names and containers, deterministic fake values.

Values follow the `detweights.fill` rules of the reference material (so the golden vectors were made
with the same numbers), shapes are those of the official manifests (`small=False`) or of each
network's `Dims.small()` (same names, narrow widths; for fast tests). Pickled official files are
written in the pickle-free flattened safetensors form under their official names, which
`checkpoints.load_model` reads like the torch pickles.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import numpy as np
from safetensors.numpy import save_file
from torch import nn

from .checkpoints import FLATTENED_MARK, LEGACY_FILES, MAIN_PREFIXES, MAPPING_FILES, main_file

log = logging.getLogger(__name__)

MANIFESTS = {  # official file -> manifest (relative to reference_dir/sadtalker/manifests)
    **{main_file(s): f"{main_file(s)}.json" for s in (256, 512)},
    **{name: f"{name}.json" for name in MAPPING_FILES.values()},
    **{name: f"{name}.json" for name, _ in LEGACY_FILES.values()},
}


def load_detweights(reference_dir: str | Path) -> ModuleType:
    path = Path(reference_dir) / "sadtalker" / "detweights.py"
    spec = importlib.util.spec_from_file_location("_sadtalker_detweights", path)
    if spec is None or spec.loader is None or not path.exists():
        raise FileNotFoundError(f"detweights.py not found at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_networks() -> dict[str, Callable[[], nn.Module]]:
    """role -> builder of the narrow network (role names as in checkpoints.MAIN_PREFIXES values)."""
    from .audio2exp import ExpNet, ExpNetDims
    from .audio2pose import PoseVAE, PoseVAEDims
    from .face3d import ReconNet, ReconNetDims
    from .generator import GeneratorDims, SPADEGenerator
    from .head_pose import HEEstimator, HEEstimatorDims
    from .kp_detector import KPDetector, KPDetectorDims
    from .mapping import MappingDims, MappingNet

    return {
        "kp_detector": lambda: KPDetector(KPDetectorDims.small()),
        "generator": lambda: SPADEGenerator(GeneratorDims.small()),
        "audio2exp": lambda: ExpNet(ExpNetDims.small()),
        "audio2pose": lambda: PoseVAE(PoseVAEDims.small()),
        "face3d": lambda: ReconNet(ReconNetDims.small()),
        "he_estimator": lambda: HEEstimator(HEEstimatorDims.small()),
        "mapping_70": lambda: MappingNet(MappingDims.small(70)),
        "mapping_73": lambda: MappingNet(MappingDims.small(73)),
    }


def _entries(net: nn.Module, prefix: str) -> list[dict]:
    return [{"name": prefix + name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
            for name, t in net.state_dict().items()]


def small_entries(file_name: str) -> list[dict]:
    """Manifest-like tensor list of an official file with the narrow shapes."""
    nets = _small_networks()
    if file_name.endswith(".safetensors"):
        return [e for prefix, role in MAIN_PREFIXES.items() for e in _entries(nets[role](), prefix + ".")]
    if file_name in MAPPING_FILES.values():
        channels = next(c for c, n in MAPPING_FILES.items() if n == file_name)
        return _entries(nets[f"mapping_{channels}"](), "mapping.")
    role = next(r for r, (n, _) in LEGACY_FILES.items() if n == file_name)
    keys = LEGACY_FILES[role][1]
    roles = {"renderer": ("generator", "kp_detector", "he_estimator")}.get(role, (role,))
    return [e for key, r in zip(keys, roles, strict=True) for e in _entries(nets[r](), key + ".")]


def write_file(detweights: ModuleType, file_name: str, entries: list[dict], out_dir: Path, seed: int) -> Path:
    tensors = detweights.fill(entries, seed)
    meta = {"generator": "sadtalker.standin", "base_seed": str(seed)}
    if not file_name.endswith(".safetensors"):
        meta[FLATTENED_MARK] = "1"
        meta["dict_keys"] = ",".join(sorted({name.split(".", 1)[0] for name in tensors}))
    path = out_dir / file_name
    # np.ascontiguousarray would turn 0-d counters (num_batches_tracked) into shape (1,)
    save_file({k: np.asarray(v, order="C") for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def standin_files(sizes: Iterable[int], legacy: bool) -> list[str]:
    names = [main_file(s) for s in sizes] + list(MAPPING_FILES.values())
    return names + ([name for name, _ in LEGACY_FILES.values()] if legacy else [])


def write_standins(out_dir: str | Path, reference_dir: str | Path, *, small: bool, seed: int = 0,
                   sizes: Iterable[int] = (256,), legacy: bool = False, face_models: bool = False) -> Path:
    """Write a stand-in checkpoint directory; returns it.

    `reference_dir` is the folder holding `sadtalker/detweights.py` and `sadtalker/manifests/`.
    `face_models=True` also writes the face-model files into `out_dir/gfpgan/weights`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    detweights = load_detweights(reference_dir)
    manifests = Path(reference_dir) / "sadtalker" / "manifests"
    for name in standin_files(sizes, legacy):
        if small:
            entries = small_entries(name)
        else:
            entries = json.loads((manifests / MANIFESTS[name]).read_text())["tensors"]
        write_file(detweights, name, entries, out, seed)
        log.info("wrote stand-in %s", out / name)
    if face_models:
        from .face.standin import write_face_standins

        write_face_standins(out / "gfpgan" / "weights", reference_dir, small=small, seed=seed)
    return out
