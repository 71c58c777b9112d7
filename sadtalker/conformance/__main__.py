"""Run every case of one or more golden directories and print a table.

    python -m sadtalker.conformance DIR [DIR ...] [--device cpu|cuda] [--only PATTERN]

Exit status 0 only if every case file ran and every output it holds passed.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .core import CaseContext, CaseFn, Result, Tolerance

CASE_MODULES = ("audio_cases", "model_cases", "preprocess_cases", "face_cases")


def load_registry() -> tuple[dict[str, CaseFn], list[str]]:
    """All registered case functions, and the modules that failed to import."""
    registry: dict[str, CaseFn] = {}
    broken = []
    for name in CASE_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except Exception as e:  # noqa: BLE001 - reported as a failing row, never hidden
            broken.append(f"{name}: {type(e).__name__}: {e}")
            continue
        registry.update(module.CASES)
    return registry, broken


def case_key(stem: str) -> str:
    """`a_audio_frontend` -> `audio_frontend` (the letter prefix orders files, it does not name them)."""
    head, _, rest = stem.partition("_")
    return rest if len(head) == 1 and rest else stem


def find_case(registry: dict[str, CaseFn], key: str) -> CaseFn | None:
    if key in registry:
        return registry[key]
    for pattern, fn in registry.items():
        if fnmatch.fnmatchcase(key, pattern):
            return fn
    return None


def run_directory(golden_dir: Path, device: str, only: str | None) -> list[Result]:
    registry, broken = load_registry()
    ctx = CaseContext.open(golden_dir, device=device)
    results: list[Result] = []
    files = sorted(golden_dir.glob("*.npz"))
    if not files:
        results.append(Result(f"{golden_dir.name}/*", float("nan"), float("nan"), Tolerance("exact"), False,
                              "no .npz case files"))
    for path in files:
        if only and not fnmatch.fnmatchcase(path.stem, only):
            continue
        fn = find_case(registry, case_key(path.stem))
        if fn is None:
            why = "no runner for this case" + (f" ({'; '.join(broken)})" if broken else "")
            results.append(Result(path.stem, float("nan"), float("nan"), Tolerance("exact"), False, why))
            continue
        started = time.perf_counter()
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            rows = fn(arrays, ctx)
            if not rows:
                raise RuntimeError("case compared nothing")
        except Exception as e:  # noqa: BLE001 - a case that cannot run is a failure with its reason
            traceback.print_exc(file=sys.stderr)
            rows = [Result(path.stem, float("nan"), float("nan"), Tolerance("exact"), False,
                           f"error: {type(e).__name__}: {e}")]
        elapsed = time.perf_counter() - started
        for row in rows:
            row.case = row.case if row.case.startswith(path.stem) else f"{path.stem}.{row.case}"
        rows[-1].note = (rows[-1].note + f" [{elapsed:.1f}s]").strip()
        results.extend(rows)
    return results


def format_table(results: list[Result]) -> str:
    header = f"{'case':<58} {'max abs err':>12} {'max rel err':>12} {'tolerance':<26} {'result':<6} note"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.case:<58} {r.max_abs:>12.3e} {r.max_rel:>12.3e} {r.tolerance.describe():<26} "
                     f"{'pass' if r.passed else 'FAIL':<6} {r.note}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sadtalker.conformance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, help="golden directories")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (float32; TF32 disabled)")
    parser.add_argument("--only", help="run only case files whose stem matches this pattern")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    results: list[Result] = []
    for d in args.dirs:
        if not d.is_dir():
            parser.error(f"{d} is not a directory")
        results.extend(run_directory(d, args.device, args.only))
    print("Tolerances are those of float32 recomputation against the float32 reference "
          "(see each golden README); no case is skipped.")
    print(format_table(results))
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
