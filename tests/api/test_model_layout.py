"""The legacy install layout: the service folder copied beside a SadTalker install (`<SadTalker>/checkpoints`,
`<SadTalker>/gfpgan/weights`). The search order finds both; /readyz and the start-up log say which files were
found where and which detector and enhancer are in use, and the dlib fallback is never silent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import model_paths
from settings import Settings
from tests.support.app import make_settings, running_app
from tests.support.fake_renderer import FakeFactory

MODEL = "SadTalker_V0.0.2_256.safetensors"


def legacy_install(root: Path, face_files: tuple[str, ...] = model_paths.FACE_FILES) -> Path:
    """`root` laid out as a SadTalker install with our service copied into it; returns the service folder."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / MODEL).write_bytes(b"x")
    (root / "gfpgan" / "weights").mkdir(parents=True)
    for name in face_files:
        (root / "gfpgan" / "weights" / name).write_bytes(b"x")
    service = root / "sadtalker_async"
    service.mkdir()
    return service


def test_checkpoint_search_order(tmp_path):
    service = legacy_install(tmp_path)
    assert model_paths.default_checkpoint_dir(service) == tmp_path / "checkpoints"  # ../checkpoints
    (service / "checkpoints").mkdir()
    assert model_paths.default_checkpoint_dir(service) == tmp_path / "checkpoints"  # an empty own dir is skipped
    (service / "checkpoints" / "mapping_00229-model.pth.tar").write_bytes(b"x")
    assert model_paths.default_checkpoint_dir(service) == service / "checkpoints"  # the project's own wins
    bare = tmp_path / "bare" / "svc"
    bare.mkdir(parents=True)
    assert model_paths.default_checkpoint_dir(bare) == bare / "checkpoints"  # nothing anywhere: the default


def test_face_weights_are_found_beside_the_checkpoints_and_overridable(tmp_path):
    legacy_install(tmp_path)
    settings = Settings(sadtalker_checkpoint_dir=tmp_path / "checkpoints")
    dirs = settings.face_weight_dirs
    assert dirs == [tmp_path / "checkpoints", tmp_path / "checkpoints" / "gfpgan" / "weights",
                    tmp_path / "gfpgan" / "weights"]
    assert model_paths.find_in(dirs, "GFPGANv1.4.pth") == tmp_path / "gfpgan" / "weights" / "GFPGANv1.4.pth"
    own = tmp_path / "mine"
    own.mkdir()
    (own / "GFPGANv1.4.pth").write_bytes(b"x")
    override = Settings(sadtalker_checkpoint_dir=tmp_path / "checkpoints", sadtalker_face_weights_dir=own)
    assert override.face_weight_dirs[0] == own
    assert model_paths.find_in(override.face_weight_dirs, "GFPGANv1.4.pth") == own / "GFPGANv1.4.pth"
    assert override.checkpoint_dir_source == "SADTALKER_CHECKPOINT_DIR"


async def test_readyz_and_start_up_log_say_which_files_were_found_where(tmp_path, caplog):
    legacy_install(tmp_path / "SadTalker")
    settings = make_settings(tmp_path / "out", sadtalker_checkpoint_dir=tmp_path / "SadTalker" / "checkpoints")
    caplog.set_level(logging.INFO, logger="api_app")
    async with running_app(settings, FakeFactory()) as (_, client):
        ready = (await client.get("/readyz")).json()
    models = ready["models"]
    weights = tmp_path / "SadTalker" / "gfpgan" / "weights"
    assert models["checkpoint_dir"] == str(tmp_path / "SadTalker" / "checkpoints")
    assert models["checkpoint_files"] == [MODEL]
    assert models["face_files"] == {name: str(weights / name) for name in model_paths.FACE_FILES}
    assert models["face_detector"] == "retinaface+fan" and models["enhancer"] == "gfpgan"
    assert models["dlib_fallback"] is False and models["warning"] is None
    log = caplog.text
    assert f"detection_Resnet50_Final.pth={weights / 'detection_Resnet50_Final.pth'}" in log
    assert "face detector retinaface+fan, enhancer gfpgan" in log


@pytest.mark.parametrize("enhancer", [True, False])
async def test_dlib_fallback_is_never_silent(tmp_path, caplog, enhancer):
    legacy_install(tmp_path / "SadTalker", face_files=("GFPGANv1.4.pth",))
    settings = make_settings(tmp_path / "out", sadtalker_checkpoint_dir=tmp_path / "SadTalker" / "checkpoints",
                             sadtalker_enhancer=enhancer)
    async with running_app(settings, FakeFactory()) as (_, client):
        models = (await client.get("/readyz")).json()["models"]
    assert models["dlib_fallback"] is True and models["face_detector"] == "dlib"
    assert "dlib fallback" in models["warning"] and "detection_Resnet50_Final.pth" in models["warning"]
    assert models["face_files"]["alignment_WFLW_4HG.pth"] is None and models["enhancer"] == "none"
    assert "parsing_parsenet.pth" in models["enhancer_problem"] if enhancer else models["enhancer_problem"]
    assert any(r.levelno == logging.WARNING and "dlib fallback" in r.getMessage() for r in caplog.records)


@pytest.mark.slow  # stand-in face networks plus the dlib fallback: about 15 s on 2 cores
def test_the_model_package_loads_face_files_from_the_dirs_it_is_given(tmp_path, reference_dir):
    from sadtalker.face import FaceAnalyzer
    from sadtalker.face.standin import write_face_standins

    legacy_install(tmp_path, face_files=())
    write_face_standins(tmp_path / "gfpgan" / "weights", reference_dir, small=True)
    settings = Settings(sadtalker_checkpoint_dir=tmp_path / "checkpoints")
    analyzer = FaceAnalyzer.load(settings.sadtalker_checkpoint_dir, "cpu", face_dirs=settings.face_weight_dirs)
    assert analyzer.backend == "retinaface+fan"
    assert analyzer.files["detector"] == str(tmp_path / "gfpgan" / "weights" / "detection_Resnet50_Final.pth")
    assert FaceAnalyzer.load(settings.sadtalker_checkpoint_dir, "cpu").backend == "dlib"  # the old search
