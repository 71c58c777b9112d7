"""Where the service looks for model files, and what it found (pure path logic; no settings, no torch).

Checkpoints (the first that applies):
  1. `SADTALKER_CHECKPOINT_DIR`;
  2. `checkpoints/` of the project, when it holds any model file;
  3. `../checkpoints` beside the project, when it holds any model file (the service copied next to an existing
     SadTalker install, which the original description's default `../checkpoints` assumes);
  4. `checkpoints/` of the project (empty: /readyz says what is missing).

Face and GFPGAN weights, each file from the first folder that holds it:
  1. `SADTALKER_FACE_WEIGHTS_DIR` when set;
  2. the checkpoint directory, then its `gfpgan/weights/`;
  3. `gfpgan/weights/` beside the checkpoint directory (a SadTalker install keeps `gfpgan/weights/` next to
     `checkpoints/`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# The official file names (facts of the release; sadtalker/ checks the same names when it loads).
MODEL_PATTERNS = ("SadTalker_V0.0.2_*.safetensors", "mapping_*-model.pth.tar", "auido2exp_*-model.pth")
DETECTOR_FILES = ("detection_Resnet50_Final.pth", "alignment_WFLW_4HG.pth")
ENHANCER_FILES = ("GFPGANv1.4.pth", "parsing_parsenet.pth")
FACE_FILES = DETECTOR_FILES + ENHANCER_FILES
DLIB_WARNING = ("face detection uses the dlib fallback (missing {missing}): crops differ from the reference and "
                "its landmark model excludes commercial use; put the official files in one of {dirs}")


def holds_models(folder: Path) -> bool:
    """True when `folder` holds at least one SadTalker model file."""
    return folder.is_dir() and any(next(folder.glob(pattern), None) for pattern in MODEL_PATTERNS)


def default_checkpoint_dir(project_dir: Path) -> Path:
    """The checkpoint directory when SADTALKER_CHECKPOINT_DIR is unset (steps 2-4 of the module's order)."""
    own, beside = project_dir / "checkpoints", project_dir.parent / "checkpoints"
    if holds_models(own):
        return own
    if holds_models(beside):
        return beside.resolve()
    return own


def face_weight_dirs(checkpoint_dir: Path, explicit: Path | None = None) -> list[Path]:
    """The folders face files are looked for in, in order, without duplicates."""
    checkpoint_dir = Path(checkpoint_dir)
    dirs = ([Path(explicit)] if explicit else []) + [
        checkpoint_dir, checkpoint_dir / "gfpgan" / "weights", checkpoint_dir.parent / "gfpgan" / "weights"]
    return list(dict.fromkeys(dirs))


def find_in(dirs: Sequence[Path], name: str) -> Path | None:
    return next((Path(d) / name for d in dirs if (Path(d) / name).is_file()), None)


def models_report(checkpoint_dir: Path, source: str, face_dirs: Sequence[Path], enhancer_enabled: bool) -> dict:
    """What /readyz and the start-up log say about the model files: where each was found (or null), the
    face detector and enhancer these files give, and a loud `warning` when detection falls back to dlib."""
    files = {name: (str(path) if (path := find_in(face_dirs, name)) else None) for name in FACE_FILES}
    missing_detector = [name for name in DETECTOR_FILES if files[name] is None]
    missing_enhancer = [name for name in ENHANCER_FILES if files[name] is None]
    models = sorted(p.name for pattern in MODEL_PATTERNS for p in Path(checkpoint_dir).glob(pattern))
    report = {
        "checkpoint_dir": str(checkpoint_dir), "checkpoint_dir_source": source,
        "checkpoint_files": models, "face_weights_dirs": [str(d) for d in face_dirs], "face_files": files,
        "face_detector": "dlib" if missing_detector else "retinaface+fan",
        "dlib_fallback": bool(missing_detector),
        "enhancer": "gfpgan" if enhancer_enabled and not missing_enhancer else "none",
        "enhancer_problem": None if not enhancer_enabled or not missing_enhancer else
        f"enhancer=gfpgan jobs fail: {', '.join(missing_enhancer)} not found",
        "warning": None,
    }
    if not enhancer_enabled:
        report["enhancer_problem"] = "SADTALKER_ENHANCER=false"
    if missing_detector:
        report["warning"] = DLIB_WARNING.format(missing=", ".join(missing_detector),
                                                dirs=", ".join(str(d) for d in face_dirs))
    return report
