"""The dependency rules of README's "What is where", enforced by import-linter (contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports() -> str:
    return str(Path(sys.executable).parent / "lint-imports") if (Path(sys.executable).parent / "lint-imports").exists() \
        else shutil.which("lint-imports") or "lint-imports"


def test_import_contracts_are_kept():
    run = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout and "4 kept" in run.stdout, run.stdout[-2000:]


def test_render_options_are_the_models_generate_options():
    """jobs.RenderOptions reaches sadtalker's GenerateOptions by name (api/renderer.py): no field may be lost."""
    from dataclasses import fields

    from jobs import RenderOptions
    from sadtalker.pipeline import GenerateOptions

    model_fields = {f.name for f in fields(GenerateOptions)}
    assert {f.name for f in fields(RenderOptions)} <= model_fields
    assert {"ref_eyeblink", "ref_pose"} <= model_fields  # RenderRequest carries these two inputs
