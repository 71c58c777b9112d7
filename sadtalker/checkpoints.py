"""Official checkpoint files -> networks (ARCHITECTURE §1): file choice, content sniffing, strict loading.

Current release: `SadTalker_V0.0.2_{256,512}.safetensors` (five networks, routed by name prefix) plus
the mapping files `mapping_00229-model.pth.tar` (70 channels; crop/extcrop/resize) and
`mapping_00109-model.pth.tar` (73 channels; full/extfull). Legacy (`old_version`): the four `.pth`
files. Pickled files are read with `torch.load(weights_only=True)`, or, under the same name, in the
pickle-free flattened safetensors form (`<dict_key>.<name>` keys, metadata
`sadtalker_flattened_torch_dict`). Every tensor is accounted for: a missing, unexpected or mis-shaped
tensor, a truncated or foreign file is a CheckpointError naming the file and the tensor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError, MissingCheckpoints
from .generator import SPADEGenerator
from .head_pose import HEEstimator
from .kp_detector import KPDetector
from .mapping import MappingNet
from .precision import emulate_cpu_convs
from .weightfile import read_weights, sub_state

log = logging.getLogger(__name__)

SIZES = (256, 512)
PREPROCESSES = ("crop", "extcrop", "resize", "full", "extfull")
FULL_MODES = ("full", "extfull")
MAPPING_FILES = {70: "mapping_00229-model.pth.tar", 73: "mapping_00109-model.pth.tar"}
LEGACY_FILES = {  # role -> (file name, dict keys read)
    "audio2pose": ("auido2pose_00140-model.pth", ("model",)),
    "audio2exp": ("auido2exp_00300-model.pth", ("model",)),
    "renderer": ("facevid2vid_00189-model.pth.tar", ("generator", "kp_detector", "he_estimator")),
    "face3d": ("epoch_20.pth", ("net_recon",)),
}
FLATTENED_MARK = "sadtalker_flattened_torch_dict"  # metadata of the pickle-free form (stand-in writers)


def main_file(size: int) -> str:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    return f"SadTalker_V0.0.2_{size}.safetensors"


def mapping_channels(preprocess: str) -> int:
    if preprocess not in PREPROCESSES:
        raise ValueError(f"preprocess must be one of {', '.join(PREPROCESSES)}, got {preprocess!r}")
    return 73 if preprocess in FULL_MODES else 70


def uses_legacy(checkpoint_dir: str | Path, old_version: bool | None) -> bool:
    """None: legacy only when the directory has no *.safetensors but has a legacy file."""
    if old_version is not None:
        return bool(old_version)
    d = Path(checkpoint_dir)
    if any(d.glob("*.safetensors")):
        return False
    return any((d / name).exists() for name, _ in LEGACY_FILES.values())


def required_files(checkpoint_dir: str | Path, size: int = 256, preprocess: str = "crop",
                   old_version: bool = False) -> list[Path]:
    """Files a render with these options reads (the legacy set has no 512 variant)."""
    d = Path(checkpoint_dir)
    names = [name for name, _ in LEGACY_FILES.values()] if old_version else [main_file(size)]
    return [d / n for n in names] + [d / MAPPING_FILES[mapping_channels(preprocess)]]


def missing_files(checkpoint_dir: str | Path, size: int = 256, preprocesses: Iterable[str] = ("crop",),
                  old_version: bool | None = None) -> list[str]:
    """Names of required files absent from `checkpoint_dir` ([] when everything is there)."""
    legacy = uses_legacy(checkpoint_dir, old_version)
    missing: list[str] = []
    for preprocess in preprocesses:
        for path in required_files(checkpoint_dir, size, preprocess, legacy):
            if not path.is_file() and path.name not in missing:
                missing.append(path.name)
    return missing


# ---------------------------------------------------------------------------------------------- reading


def _fail(path: Path, what: str, e: BaseException | None = None) -> CheckpointError:
    return CheckpointError(f"{path}: {what}" + (f" ({type(e).__name__}: {e})" if e else ""))


# ---------------------------------------------------------------------------------------------- routing


def _audio_classes() -> dict[str, Callable[..., nn.Module]]:
    from .audio2exp import ExpNet
    from .audio2pose import PoseVAE
    from .face3d import ReconNet

    return {"audio2exp": ExpNet.from_state_dict, "audio2pose": PoseVAE.from_state_dict,
            "face3d": ReconNet.from_state_dict}


MAIN_PREFIXES = {  # prefix in the safetensors file -> role
    "kp_extractor": "kp_detector",
    "generator": "generator",
    "audio2exp": "audio2exp",
    "audio2pose": "audio2pose",
    "face_3drecon": "face3d",
}


def split_main(tensors: Mapping[str, torch.Tensor], path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Route a flat safetensors dict by name prefix into role -> state dict (prefix stripped)."""
    parts: dict[str, dict[str, torch.Tensor]] = {role: {} for role in MAIN_PREFIXES.values()}
    for name, tensor in tensors.items():
        prefix, _, rest = name.partition(".")
        if prefix not in MAIN_PREFIXES or not rest:
            raise _fail(path, f"unexpected tensor '{name}' (known prefixes: {', '.join(MAIN_PREFIXES)})")
        parts[MAIN_PREFIXES[prefix]][rest] = tensor
    for prefix, role in MAIN_PREFIXES.items():
        if not parts[role]:
            raise _fail(path, f"missing tensors '{prefix}.*' (no {role} network in this file)")
    return parts


def build(role: str, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    builders: dict[str, Callable[..., nn.Module]] = {
        "kp_detector": KPDetector.from_state_dict, "generator": SPADEGenerator.from_state_dict,
        "he_estimator": HEEstimator.from_state_dict, **_audio_classes()}
    return builders[role](state, source)


def load_main(path: Path) -> dict[str, nn.Module]:
    tensors = read_weights(path)
    parts = split_main(tensors, path)
    del tensors
    return {role: build(role, state, f"{path} [{prefix}.]")
            for (prefix, role), state in zip(MAIN_PREFIXES.items(), parts.values(), strict=True)}


def load_legacy(checkpoint_dir: Path) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """The four legacy .pth files -> networks; the head-pose estimator is loaded (strictly) and dropped."""
    nets: dict[str, nn.Module] = {}
    files: dict[str, str] = {}
    for role, (name, keys) in LEGACY_FILES.items():
        path = checkpoint_dir / name
        data = read_weights(path)
        targets = {"renderer": ("generator", "kp_detector", "he_estimator")}.get(role, (role,))
        for key, target in zip(keys, targets, strict=True):
            nets[target] = build(target, sub_state(data, (key,), str(path)), f"{path} [{key}]")
            files[target] = str(path)
    nets.pop("he_estimator")  # never executed by inference (ARCHITECTURE §7.7)
    files.pop("he_estimator")
    return nets, files


def load_mapping(path: Path) -> MappingNet:
    state = sub_state(read_weights(path), ("mapping",), str(path))
    return MappingNet.from_state_dict(state, f"{path} [mapping]")


# ---------------------------------------------------------------------------------------------- model


@dataclass
class SadTalkerModel:
    """Every network, loaded once, in eval mode, on one device.

    The generator uses `dtype` (precision.py); the keypoint detector, the mapping nets, the audio networks
    and the 3DMM net stay float32 (the fp32 islands). Mapping nets are loaded on first use and cached in `mappings`
    (callers holding weights elsewhere may pre-fill it).
    """

    kp_detector: KPDetector
    generator: SPADEGenerator
    audio2exp: nn.Module
    audio2pose: nn.Module
    face3d: nn.Module
    device: torch.device
    dtype: torch.dtype
    size: int
    files: dict[str, str]
    checkpoint_dir: Path = Path("checkpoints")
    mappings: dict[int, MappingNet] = field(default_factory=dict, repr=False)  # channels -> net (cache)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mapping(self, preprocess: str) -> MappingNet:
        """70-channel net for crop/extcrop/resize, 73-channel for full/extfull."""
        channels = mapping_channels(preprocess)
        with self._lock:
            if channels not in self.mappings:
                path = self.checkpoint_dir / MAPPING_FILES[channels]
                net = load_mapping(path).to(self.device, torch.float32).eval().requires_grad_(False)
                self.mappings[channels] = net
                self.files[f"mapping_{channels}"] = str(path)
            return self.mappings[channels]


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(checkpoint_dir: str | Path, size: int = 256, *, device: str | torch.device | None = None,
               dtype: torch.dtype = torch.float32, old_version: bool | None = None) -> SadTalkerModel:
    """Load every network of the chosen file set strictly onto `device` (cuda if available by default).

    Raises MissingCheckpoints when a required file is absent, CheckpointError when one is broken.
    """
    d = Path(checkpoint_dir)
    main_file(size)  # validates the size
    legacy = uses_legacy(d, old_version)
    main_names = [name for name, _ in LEGACY_FILES.values()] if legacy else [main_file(size)]
    missing = [n for n in main_names if not (d / n).is_file()]
    if missing:
        raise MissingCheckpoints(str(d), missing)
    if legacy:
        nets, files = load_legacy(d)
    else:
        nets = load_main(d / main_file(size))
        files = dict.fromkeys(nets, str(d / main_file(size)))
    dev = pick_device(device)
    for role, net in nets.items():
        net.to(dev, dtype if role == "generator" else torch.float32).eval().requires_grad_(False)
        if role == "generator" and dev.type == "cpu":
            emulate_cpu_convs(net, dtype)
    log.info("loaded %s networks from %s on %s (%s)", "legacy" if legacy else f"{size}px", d, dev, dtype)
    return SadTalkerModel(**nets, device=dev, dtype=dtype, size=size, files=files, checkpoint_dir=d)
