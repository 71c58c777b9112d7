"""The golden-vector conformance runner, run as users run it (`python -m sadtalker.conformance DIR`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sadtalker.conformance", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def golden_copy(tmp_path, reference_dir) -> Path:
    """An empty golden directory beside links to the reference manifests and detweights.py."""
    ref = tmp_path / "ref"
    (ref / "golden").mkdir(parents=True)
    (ref / "manifests").symlink_to(reference_dir / "sadtalker" / "manifests")
    (ref / "detweights.py").symlink_to(reference_dir / "sadtalker" / "detweights.py")
    (ref / "golden" / "params.json").write_text((reference_dir / "sadtalker" / "golden" / "params.json").read_text())
    return ref / "golden"


def test_model_cases_pass_on_the_developer_set(reference_dir):
    """The cheap renderer cases: mapping nets (d) and keypoint transformation (h)."""
    result = _run(str(reference_dir / "sadtalker" / "golden"), "--only", "[dh]_*")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "d_mapping.out73_exp" in result.stdout and "h_keypoint_transformation.rot_mat" in result.stdout
    assert " 0 failed" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_every_golden_case_passes(reference_dir):
    """All cases of every engineer, the end-to-end files (j) included: tens of minutes on 2 CPU cores."""
    result = _run(str(reference_dir / "sadtalker" / "golden"), timeout=5400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "FAIL" not in result.stdout


def test_a_wrong_output_fails(golden_copy, reference_dir):
    with np.load(reference_dir / "sadtalker" / "golden" / "h_keypoint_transformation.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["kp_transformed"] = arrays["kp_transformed"] + 1e-3
    np.savez(golden_copy / "h_keypoint_transformation.npz", **arrays)
    result = _run(str(golden_copy))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("h_keypoint_transformation.kp_transformed "))
    assert "FAIL" in line
    assert "1 failed" in result.stdout


def test_an_unknown_or_broken_case_fails(golden_copy, reference_dir):
    np.savez(golden_copy / "k_unknown_network.npz", x=np.zeros(3))
    with np.load(reference_dir / "sadtalker" / "golden" / "d_mapping.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "input_70"}
    arrays["input_73"] = arrays["input_73"][:, :70]  # wrong channel count: the case errors
    np.savez(golden_copy / "d_mapping.npz", **arrays)
    result = _run(str(golden_copy))
    assert result.returncode == 1
    assert "no runner for this case" in result.stdout
    assert "d_mapping" in result.stdout and "error:" in result.stdout



@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_face_model_case_passes(reference_dir):
    """The face-model golden directory (detector, landmarks, parsing, GFPGAN, paste-back, enhancer flow)."""
    result = _run(str(reference_dir / "facemodels" / "golden"), timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "FAIL" not in result.stdout and " 0 failed" in result.stdout
