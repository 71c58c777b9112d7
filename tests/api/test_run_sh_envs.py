"""run.sh with environments it did not create, `--help`, and the refusal to start on a GPU torch cannot use.

The existing environment is a throwaway virtualenv that sees the project's packages through a `.pth` file,
holds a `torch` distribution of its own (an older CUDA build, as a legacy pod has) and a `pip` that records
what it is asked to install (no network here). run.sh and a requirements.txt with one package nobody has are
copied into a temporary project folder, so the real files are never touched."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.app import ROOT, free_port, make_settings

MISSING = "sadtalker-test-missing-package==1.0"


def fake_dist(site_packages: Path, name: str, version: str, code: str = "") -> None:
    """A package `name` with its dist-info (what importlib.metadata and pip read)."""
    (site_packages / name).mkdir(parents=True, exist_ok=True)
    (site_packages / name / "__init__.py").write_text(code or f"__version__ = {version!r}\n")
    info = site_packages / f"{name}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")


@pytest.fixture(scope="module")
def legacy_env(tmp_path_factory) -> tuple[Path, Path]:
    """(the environment, the file its pip writes its arguments to)."""
    env = tmp_path_factory.mktemp("legacy") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (env_site,) = list((env / "lib").glob("python3*/site-packages"))
    (env_site / "project-packages.pth").write_text(site.getsitepackages()[0] + "\n")
    fake_dist(env_site, "torch", "2.1.0+cu118")
    log = env / "pip-calls.txt"
    (env_site / "pip").mkdir()
    (env_site / "pip" / "__init__.py").write_text("")
    (env_site / "pip" / "__main__.py").write_text(textwrap.dedent(f"""
        import sys
        with open({str(log)!r}, "a") as out:
            out.write(" ".join(sys.argv[1:]) + "\\n")
            for i, arg in enumerate(sys.argv):
                if arg in ("-r", "-c"):
                    out.write(arg + ":" + open(sys.argv[i + 1]).read().replace("\\n", ";") + "\\n")
    """))
    return env, log


@pytest.fixture
def project(tmp_path) -> Path:
    """run.sh, scripts/venv_requirements.py and a requirements.txt with one missing package."""
    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "venv_requirements.py", tmp_path / "scripts")
    (tmp_path / "requirements.txt").write_text((ROOT / "requirements.txt").read_text() + MISSING + "\n")
    return tmp_path


def run_sh(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # API_PORT=0 and an app dir without api_app: uvicorn stops at once after the install step
    full = {**os.environ, "API_PORT": "0", "API_HOST": "127.0.0.1", "PYTHON": sys.executable, **env}
    return subprocess.run([str(project / "run.sh"), *args], cwd=project.parent, env=full, capture_output=True,
                          text=True, timeout=60)


def test_help_prints_and_creates_nothing(tmp_path):
    project = tmp_path / "svc"
    project.mkdir()
    shutil.copy(ROOT / "run.sh", project / "run.sh")
    for flag in ("--help", "-h"):
        done = run_sh(project, {"SADTALKER_VENV": ""}, flag)
        assert done.returncode == 0 and "Usage: run.sh" in done.stdout and "SADTALKER_SKIP_INSTALL" in done.stdout
    assert sorted(p.name for p in project.iterdir()) == ["run.sh"]  # no .venv, no outputs
    wrong = run_sh(project, {}, "--bogus")
    assert wrong.returncode == 2 and "--help" in wrong.stderr


def test_existing_env_gets_only_what_is_missing_and_keeps_its_torch(project, legacy_env):
    env, log = legacy_env
    log.unlink(missing_ok=True)
    done = run_sh(project, {"SADTALKER_VENV": str(env)})
    calls = log.read_text().splitlines()
    assert calls[0].startswith("install") and f"-r:{MISSING};" in calls, calls
    constraints = next(line for line in calls if line.startswith("-c:"))
    assert "torch==2.1.0+cu118" in constraints.split(";")  # pip may not replace it
    assert "keeping the installed torch 2.1.0+cu118 (requirements.txt pins ==2.13.0)" in done.stderr
    assert not (env / ".requirements.sha256").exists()


def test_skip_install_installs_nothing(project, legacy_env):
    env, log = legacy_env
    log.unlink(missing_ok=True)
    done = run_sh(project, {"SADTALKER_VENV": str(env), "SADTALKER_SKIP_INSTALL": "1"})
    assert not log.exists() and "SADTALKER_SKIP_INSTALL=1: using" in done.stderr
    missing = run_sh(project, {"SADTALKER_VENV": str(project / "nope"), "SADTALKER_SKIP_INSTALL": "1"})
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (project / "nope").exists()


def test_venv_requirements_plan():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from venv_requirements import plan
    finally:
        sys.path.pop(0)
    versions = {"torch": "1.13.1+cu117", "numpy": "1.26.4", "fastapi": "0.100.0"}
    missing, notes = plan(["torch==2.13.0", "numpy>=1.26,<3", "fastapi==0.163.2", "bullmq==3.4.4",
                           "pywin32==306; sys_platform == 'win32'"], versions.get)
    assert missing == ["bullmq==3.4.4"]
    assert len(notes) == 2 and "torch 1.13.1+cu117" in notes[0] and "fastapi 0.100.0" in notes[1]


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch) -> Path:
    """An `nvidia-smi` on PATH that lists one GPU (this machine has none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return smi


async def test_visible_gpu_that_torch_cannot_use_refuses_to_start_on_auto(tmp_path, fake_nvidia_smi):
    from api.renderer import GpuUnusable, refuse_unusable_gpu, visible_gpu
    from api_app import create_app
    from tests.support.fake_renderer import FakeFactory

    assert visible_gpu(None) == "nvidia-smi lists GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)"
    assert visible_gpu("") is None and visible_gpu("-1") is None  # hidden on purpose
    with pytest.raises(GpuUnusable, match="SADTALKER_DEVICE=cpu"):
        refuse_unusable_gpu("auto", None)
    refuse_unusable_gpu("cpu", None)  # explicit CPU still works
    app = create_app(make_settings(tmp_path, sadtalker_device="auto"), renderer_factory=FakeFactory())
    with pytest.raises(GpuUnusable, match="driver >= 580"):
        async with app.router.lifespan_context(app):
            pass


def test_run_sh_refuses_to_start_with_the_message(tmp_path, fake_nvidia_smi):
    env = {"SADTALKER_VENV": str(ROOT / ".venv"), "SADTALKER_SKIP_INSTALL": "1", "API_KEYS": "k-0123456789abcdef",
           "SADTALKER_OUTPUT_DIR": str(tmp_path / "out"), "SADTALKER_CHECKPOINT_DIR": str(tmp_path / "ck"),
           "PATH": os.environ["PATH"], "API_PORT": str(free_port())}
    if not (ROOT / ".venv" / "bin" / "python").exists():
        env["SADTALKER_VENV"] = str(Path(sys.executable).parent.parent)
    done = run_sh(ROOT, env)
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "SADTALKER_DEVICE=cpu" in done.stderr
