"""Shared pieces of the conformance runner: tolerances, comparisons and the per-directory context.

A golden directory (format of `reference/sadtalker/golden/README.md`) holds `*.npz` case files, a
`params.json` and/or `run_meta.json`, and sits beside a `manifests/` folder. Each case module maps case
names (the file stem without its letter prefix, e.g. `audio_frontend` for `a_audio_frontend.npz`;
`fnmatch` patterns allowed) to a function `(arrays, ctx) -> list[Result]`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """How an output is compared.

    kind: `abs` (max |a-e| <= value), `rel` (max |a-e| / max |e| <= value), `exact` (equal),
    `uint8` (every pixel within `value` levels, and at most `pixel_fraction` of them differing).
    """

    kind: str
    value: float = 0.0
    pixel_fraction: float = 0.0

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "uint8":
            return f"<={self.value:g} lvl on <={self.pixel_fraction:.2%} px"
        return f"{self.kind} {self.value:.0e}"


@dataclass
class Result:
    """One compared output of one case file."""

    case: str
    max_abs: float
    max_rel: float
    tolerance: Tolerance
    passed: bool
    note: str = ""


def compare(case: str, actual, expected, tol: Tolerance) -> Result:
    """Compare `actual` with `expected` under `tol`; shapes must match exactly."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        return Result(case, float("nan"), float("nan"), tol, False, f"shape {a.shape} != {e.shape}")
    diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(e.astype(np.float64)).max()) if e.size else 0.0
    max_rel = max_abs / scale if scale > 0 else max_abs
    if tol.kind == "exact":
        passed, note = max_abs == 0.0, ""
    elif tol.kind == "abs":
        passed, note = max_abs <= tol.value, ""
    elif tol.kind == "rel":
        passed, note = max_rel <= tol.value, ""
    elif tol.kind == "uint8":
        frac = float((diff > 0).mean()) if diff.size else 0.0
        passed = max_abs <= tol.value and frac <= tol.pixel_fraction
        note = f"{frac:.3%} px differ"
    else:
        raise ValueError(f"unknown tolerance kind {tol.kind!r}")
    return Result(case, max_abs, max_rel, tol, bool(passed), note)


@dataclass
class CaseContext:
    """What a case function needs besides its arrays: parameters, stand-in weights, device."""

    golden_dir: Path
    device: str = "cpu"
    params: dict = field(default_factory=dict)
    _weights: dict = field(default_factory=dict)

    @classmethod
    def open(cls, golden_dir: Path, device: str = "cpu") -> CaseContext:
        params: dict = {}
        for name in ("run_meta.json", "params.json"):  # params.json wins on shared keys
            path = golden_dir / name
            if path.exists():
                params.update(json.loads(path.read_text()))
        return cls(golden_dir=golden_dir, device=device, params=params)

    @property
    def reference_dir(self) -> Path:
        """The folder holding `manifests/` (the golden directory's parent)."""
        return self.golden_dir.parent

    @property
    def base_seed(self) -> int:
        return int(self.params.get("base_seed", 0))

    @cached_property
    def detweights(self) -> ModuleType:
        """`detweights.py` of the reference set: beside `manifests/`, else in a sibling `sadtalker/`."""
        for path in (self.reference_dir / "detweights.py", self.reference_dir.parent / "sadtalker" / "detweights.py"):
            if path.exists():
                spec = importlib.util.spec_from_file_location("_conformance_detweights", path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
        raise FileNotFoundError(f"detweights.py not found near {self.reference_dir}")

    def manifest_path(self, relative: str) -> Path:
        return self.reference_dir / relative

    def weights(self, manifest: str, seed: int | None = None) -> dict[str, np.ndarray]:
        """Stand-in weights of a manifest (path relative to the reference dir), cached per seed."""
        seed = self.base_seed if seed is None else seed
        key = (manifest, seed)
        if key not in self._weights:
            entries = json.loads(self.manifest_path(manifest).read_text())
            self._weights[key] = self.detweights.fill(entries["tensors"], seed)
        return self._weights[key]


CaseFn = Callable[[dict, CaseContext], list[Result]]
