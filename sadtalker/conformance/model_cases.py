"""Golden cases of the face renderer: mapping (d), keypoint detector (e), generator (f), keypoint
transformation (h) and the end-to-end glue from waveform to frames (j).

Weights come from the directory's own manifests and seed (`ctx.weights`), inputs and sizes from the
case arrays, so other golden sets run unchanged. Every output a case file holds is compared;
optional arrays that a file lacks are not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import animate
from ..checkpoints import SadTalkerModel
from ..generator import SPADEGenerator
from ..keypoints import bins_to_degrees, rotation_matrix, transform_keypoints
from ..kp_detector import KPDetector
from ..mapping import MappingNet
from .core import CaseContext, Result, Tolerance, compare

DEFAULT_MANIFESTS = {
    "manifest_main": "manifests/SadTalker_V0.0.2_256.safetensors.json",
    "manifest_mapping_70": "manifests/mapping_00229-model.pth.tar.json",
    "manifest_mapping_73": "manifests/mapping_00109-model.pth.tar.json",
}
COEFF_REL = 1e-5  # coefficient-level outputs, relative to the largest expected magnitude
KP_ABS = 1e-5  # keypoints, degrees-derived rotations
GEN_ABS = 3e-4  # generator float output (observed <= 7e-5 float32 vs float64)
INTERMEDIATE_ABS = 1e-5  # occlusion map and other (0,1) intermediates
DOWNSAMPLE_ABS = 1e-6  # Gaussian blur of [0,1] pixels
UINT8_LEVELS, UINT8_FRACTION = 1, 0.005  # <= 1 level on < 0.5 % of the values
GPU_FACTOR = 10.0
EXACT = Tolerance("exact")


def _tol(ctx: CaseContext, kind: str, value: float) -> Tolerance:
    return Tolerance(kind, value * (GPU_FACTOR if ctx.device.startswith("cuda") else 1.0))


def _uint8_tol() -> Tolerance:
    return Tolerance("uint8", UINT8_LEVELS, UINT8_FRACTION)


def _state(ctx: CaseContext, key: str, prefix: str) -> tuple[dict[str, torch.Tensor], str]:
    manifest = ctx.params.get(key, DEFAULT_MANIFESTS[key])
    weights = ctx.weights(manifest)
    cut = len(prefix) + 1
    state = {k[cut:]: torch.from_numpy(np.asarray(v)) for k, v in weights.items() if k.startswith(prefix + ".")}
    return state, f"{manifest} ({prefix}.*)"


def _net(ctx: CaseContext, key: str, prefix: str, build: Callable) -> torch.nn.Module:
    state, source = _state(ctx, key, prefix)
    return build(state, source).to(ctx.device).eval()


def _mapping(ctx: CaseContext, channels: int) -> MappingNet:
    return _net(ctx, f"manifest_mapping_{channels}", "mapping", MappingNet.from_state_dict)


def _t(array: np.ndarray, ctx: CaseContext) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(ctx.device)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _image(uint8: np.ndarray, ctx: CaseContext) -> torch.Tensor:
    """(H,W,3) uint8 -> (1,3,H,W) float32 uint8/255 (true division, as the e/f goldens do)."""
    return _t(uint8, ctx).permute(2, 0, 1)[None] / 255


def _compare_present(arrays: dict, outputs: dict[str, tuple[object, Tolerance]]) -> list[Result]:
    return [compare(name, actual, arrays[name], tol) for name, (actual, tol) in outputs.items() if name in arrays]


def mapping(arrays: dict, ctx: CaseContext) -> list[Result]:
    rows: list[Result] = []
    with torch.inference_mode():
        for channels in (70, 73):
            if f"input_{channels}" not in arrays:
                continue
            out = _mapping(ctx, channels)(_t(arrays[f"input_{channels}"], ctx))
            outputs = {f"out{channels}_{k}": (_np(v), _tol(ctx, "rel", COEFF_REL)) for k, v in out.items()}
            rows += _compare_present(arrays, outputs)
    return rows


def kp_detector(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _net(ctx, "manifest_main", "kp_extractor", KPDetector.from_state_dict)
    with torch.inference_mode():
        image = _image(arrays["image_uint8"], ctx)
        outputs = {"downsampled": (_np(net.down(image)), _tol(ctx, "abs", DOWNSAMPLE_ABS)),
                   "kp_canonical": (_np(net(image)), _tol(ctx, "abs", KP_ABS))}
    return _compare_present(arrays, outputs)


def generator(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _net(ctx, "manifest_main", "generator", SPADEGenerator.from_state_dict)
    with torch.inference_mode():
        out = net(_image(arrays["source_image_uint8"], ctx), _t(arrays["kp_source"], ctx),
                  _t(arrays["kp_driving"], ctx))
        outputs = {"prediction": (_np(out["prediction"]), _tol(ctx, "abs", GEN_ABS)),
                   "occlusion_map": (_np(out["occlusion_map"]), _tol(ctx, "abs", INTERMEDIATE_ABS)),
                   "mask_sum_over_depth": (_np(out["mask"].sum(dim=2)), _tol(ctx, "abs", 16 * INTERMEDIATE_ABS))}
    return _compare_present(arrays, outputs)


def keypoint_transformation(arrays: dict, ctx: CaseContext) -> list[Result]:
    motion = {k: _t(arrays[f"{k}_logits"], ctx) for k in ("yaw", "pitch", "roll")}
    motion.update(t=_t(arrays["t"], ctx), exp=_t(arrays["exp"], ctx))
    kp = _t(arrays["kp_canonical"], ctx)
    degrees = {k: bins_to_degrees(motion[k]) for k in ("yaw", "pitch", "roll")}
    rel, kp_tol = _tol(ctx, "rel", COEFF_REL), _tol(ctx, "abs", KP_ABS)
    outputs = {f"{k}_deg": (_np(v), rel) for k, v in degrees.items()}
    outputs["rot_mat"] = (_np(rotation_matrix(degrees["yaw"], degrees["pitch"], degrees["roll"])), kp_tol)
    outputs["kp_transformed"] = (_np(transform_keypoints(kp, motion)), kp_tol)
    outputs["kp_transformed_wo_exp"] = (_np(transform_keypoints(kp, motion, without_expression=True)), kp_tol)
    if all(f"{k}_in" in arrays for k in ("yaw", "pitch", "roll")):
        angles = {k: _t(arrays[f"{k}_in"], ctx) for k in ("yaw", "pitch", "roll")}
        outputs["kp_transformed_with_angle_override"] = (_np(transform_keypoints(kp, motion, angles_deg=angles)),
                                                         kp_tol)
    return _compare_present(arrays, outputs)


# ------------------------------------------------------------------------------------------ end to end


def _e2e_model(ctx: CaseContext, size: int) -> SadTalkerModel:
    from ..audio2exp import ExpNet
    from ..audio2pose import PoseVAE

    device = torch.device(ctx.device)
    model = SadTalkerModel(
        kp_detector=_net(ctx, "manifest_main", "kp_extractor", KPDetector.from_state_dict),
        generator=_net(ctx, "manifest_main", "generator", SPADEGenerator.from_state_dict),
        audio2exp=_net(ctx, "manifest_main", "audio2exp", ExpNet.from_state_dict),
        audio2pose=_net(ctx, "manifest_main", "audio2pose", PoseVAE.from_state_dict),
        face3d=torch.nn.Identity(),  # the source coefficients are given; the 3DMM net is case g
        device=device, dtype=torch.float32, size=size, files={})
    for channels in (70, 73):
        key = f"manifest_mapping_{channels}"
        if key in ctx.params or channels == 70:
            model.mappings[channels] = _mapping(ctx, channels)
    return model


def _coefficients(model: SadTalkerModel, arrays: dict, ctx: CaseContext) -> dict[str, np.ndarray]:
    """Waveform -> mel windows, reference, expression, smoothed (T,70) coefficients (A's code)."""
    from .. import audio, coeffs

    wav = arrays["pcm_int16"].astype(np.float32) / 32768  # what a PCM16 WAV decodes to
    mels = audio.audio_features(wav)  # T x 80 x 16
    first = arrays["first_coeff_73"].reshape(-1).astype(np.float32)
    t = len(mels)
    blink = arrays["ratio_blink"].reshape(-1).astype(np.float32)
    z = arrays["pose_z"]
    coeff = coeffs.audio_to_coefficients(
        model.audio2exp, model.audio2pose, mels, first, pose_style=int(arrays["pose_style"]), blink=blink,
        noise=lambda k: torch.from_numpy(np.ascontiguousarray(z[k], dtype=np.float32)))
    with torch.inference_mode():
        m = _t(mels, ctx)[:, None]
        exp = coeffs.predict_expression(model.audio2exp, m, _t(np.repeat(first[None, :64], t, 0), ctx),
                                        _t(blink[:, None], ctx))
    return {"indiv_mels": mels[None, :, None], "ref_coeff": np.repeat(first[None, None, :70], t, axis=1),
            "exp_pred": _np(exp)[None], "coeff_3dmm_70": coeff}


def _render_all(model: SadTalkerModel, source: animate.SourceEncoding, windows: np.ndarray, chunk: int,
                keep: set[int]) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray]:
    """Every frame once: kept float/uint8 frames and per-frame (mean, std, uint8 sum)."""
    floats, uint8s, stats = {}, {}, []
    for start in range(0, len(windows), chunk):
        frames, _ = animate.render_float_frames(model, source, windows[start:start + chunk])
        hwc = _np(frames.permute(0, 2, 3, 1)).astype(np.float32)
        quantized = animate.quantize(frames)
        for i in range(len(hwc)):
            f = start + i
            if f in keep:
                floats[f], uint8s[f] = hwc[i], quantized[i]
            x = hwc[i].astype(np.float64)
            stats.append((x.mean(), x.std(), quantized[i].astype(np.int64).sum()))
    return floats, uint8s, np.array(stats)


def e2e(arrays: dict, ctx: CaseContext) -> list[Result]:
    source_image = arrays["source_image_uint8"]
    size = source_image.shape[0]
    model = _e2e_model(ctx, size)
    preprocess = str(ctx.params.get("preprocess", "crop"))
    bs, still = int(arrays["batch_size"]), bool(int(arrays["still"]))
    first = arrays["first_coeff_73"].reshape(-1).astype(np.float32)
    out = _coefficients(model, arrays, ctx)
    target = animate.target_coefficients(out["coeff_3dmm_70"], first, preprocess, still=still,
                                         expression_scale=float(arrays["expression_scale"]))
    t = len(target)
    windows = animate.semantic_windows(target)
    layout = animate.batch_layout(windows, bs)
    out["source_semantics"] = np.repeat(animate.source_semantics(first, preprocess)[None], bs, axis=0)
    out["target_semantics"] = layout
    keep = {int(i) for i in arrays.get("frames_kept_index", [])} | {int(i) for i in arrays.get("frames_float_index", [])}
    with torch.inference_mode():
        source = animate.encode_source(model, source_image, first, preprocess)
        padded = layout.reshape(-1, *layout.shape[2:])  # T' x C x 27 in frame order
        kp_padded = _np(animate.driving_keypoints(model, source.kp_canonical, padded, preprocess))
        floats, uint8s, stats = _render_all(model, source, windows, max(bs, 4), keep)
    out.update(kp_canonical=_np(source.kp_canonical), kp_source=_np(source.kp_source), kp_driving=kp_padded[:t],
               kp_driving_padded=kp_padded, frame_mean=stats[:, 0], frame_std=stats[:, 1], frames_uint8_sum=stats[:, 2])
    if "frames_kept_index" in arrays:
        out["frames_uint8_kept"] = np.stack([uint8s[int(i)] for i in arrays["frames_kept_index"]])
    if "frames_float_index" in arrays:
        out["frames_float"] = np.stack([floats[int(i)] for i in arrays["frames_float_index"]])
    return _compare_present(arrays, _e2e_tolerances(out, ctx, size))


def _e2e_tolerances(out: dict[str, np.ndarray], ctx: CaseContext, size: int) -> dict[str, tuple]:
    rel, kp = _tol(ctx, "rel", COEFF_REL), _tol(ctx, "abs", KP_ABS)
    gen = _tol(ctx, "abs", GEN_ABS)
    # a frame's mean and std move by at most the largest per-pixel error; its uint8 sum by at most
    # 1 level on the allowed 0.5 % of its values
    uint8_sum = Tolerance("abs", UINT8_LEVELS * UINT8_FRACTION * size * size * 3)
    tolerances = {"indiv_mels": _tol(ctx, "abs", 1e-6), "ref_coeff": EXACT, "exp_pred": rel, "coeff_3dmm_70": rel,
                  "source_semantics": EXACT, "target_semantics": rel, "kp_canonical": kp, "kp_source": kp,
                  "kp_driving": kp, "kp_driving_padded": kp, "frames_uint8_kept": _uint8_tol(),
                  "frames_float": gen, "frame_mean": gen, "frame_std": gen, "frames_uint8_sum": uint8_sum}
    return {name: (value, tolerances[name]) for name, value in out.items()}


CASES = {
    "mapping": mapping,
    "kp_detector": kp_detector,
    "generator": generator,
    "keypoint_transformation": keypoint_transformation,
    "e2e_still*": e2e,
}
