"""Golden cases of the third-party face models (`reference/facemodels/golden/`, format in its README).

Every array a case file holds is compared; parameters (thresholds, seeds, strides, crops) come from the file's
own arrays, key names and `run_meta.json`, so other directories in the same format work. Tolerances follow the
golden README: relative 1e-5 of the tensor's max for network outputs (1e-4 for FAN's last module and for
saturated RetinaFace cases), exact for post-processing of stored inputs, uint8 images after a network within
1 level on <= 0.1 % of pixels. One documented exception: `estimateAffinePartial2D` (LMEDS + Levenberg-Marquardt)
differs between OpenCV 4.x (ours) and 5.0 (the goldens) by up to ~5e-5, so affines get an absolute 2e-4 bar
and the images warped with OUR affine the uint8 bar; everything warped with the STORED affine is exact.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import torch

from sadtalker.face.analyzer import Face
from sadtalker.face.constants import FACE_TEMPLATE_512
from sadtalker.face.detection import decode_boxes, decode_landmarks, prior_boxes, select, to_input
from sadtalker.face.enhancer import Enhancer, usable_landmarks
from sadtalker.face.fan import FAN
from sadtalker.face.gfpgan import GFPGANv1Clean, to_bgr_uint8
from sadtalker.face.gfpgan import to_input as gfpgan_input
from sadtalker.face.landmarks import fan_input, heatmap_points, to_68
from sadtalker.face.parsenet import ParseNet, parse_input
from sadtalker.face.paste import (
    blurred_parse_mask,
    estimate_affine,
    inverse_affine,
    parse_mask,
    paste_faces,
    upscale_background,
    warp_face,
    warp_mask,
)
from sadtalker.face.retinaface import RetinaFace
from sadtalker.face.warp import warp_affine
from sadtalker.face.weights import detector_state, gfpgan_state, landmark_state

from .core import CaseContext, Result, Tolerance, compare

EXACT = Tolerance("exact")
REL = Tolerance("rel", 1e-5)
REL_LOOSE = Tolerance("rel", 1e-4)
UINT8 = Tolerance("uint8", 1, 0.001)
AFFINE = Tolerance("abs", 2e-4)
SATURATED_ACTIVATIONS = 20.0  # |loc| beyond this marks the README's "activations ~×50" RetinaFace case

MANIFESTS = {
    "detector": "manifests/detection_Resnet50_Final.pth.json",
    "fan": "manifests/alignment_WFLW_4HG.pth.json",
    "parsenet": "manifests/parsing_parsenet.pth.json",
    "gfpgan": "manifests/GFPGANv1.4.pth.json",
}


def _state(ctx: CaseContext, role: str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v)) for k, v in ctx.weights(MANIFESTS[role]).items()}


def _net(ctx: CaseContext, role: str):
    source = f"stand-in {MANIFESTS[role]}"
    state = _state(ctx, role)
    if role == "detector":
        net = RetinaFace.from_state_dict(detector_state(state), source)
    elif role == "fan":
        net = FAN.from_state_dict(landmark_state(state, source), source)
    elif role == "parsenet":
        net = ParseNet.from_state_dict(state, source)
    else:
        net = GFPGANv1Clean.from_state_dict(gfpgan_state(state, source), source)
    return net.to(ctx.device).eval()


def _meta(ctx: CaseContext, case: str) -> dict:
    """run_meta section of a case (`a_retinaface` for `retinaface`), {} when absent."""
    for key, value in ctx.params.items():
        if isinstance(value, dict) and re.fullmatch(rf"[a-z]_{re.escape(case)}", key):
            return value
    return {}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


# ---------------------------------------------------------------------------------------------- RetinaFace
def _dets_threshold(name: str, arrays: dict, suffix: str) -> tuple[float, float | None]:
    """`dets_097_0` -> 0.97; `dets_lo_0` -> the stored `thr_lo_0`; `dets_050_030` -> (0.5, 0.3)."""
    parts = name.split("_")[1:]
    if suffix:
        parts = parts[:-1]
    conf = float(arrays[f"thr_{parts[0]}{suffix}"]) if f"thr_{parts[0]}{suffix}" in arrays else int(parts[0]) / 100
    nms = int(parts[1]) / 100 if len(parts) > 1 else None
    return conf, nms


def retinaface(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _net(ctx, "detector")
    nms = float(_meta(ctx, "retinaface").get("nms", 0.4))
    rows = []
    for key in sorted(k for k in arrays if k.startswith("img_")):
        k = key[len("img_"):]
        img = arrays[key]
        h, w = img.shape[:2]
        priors = prior_boxes(h, w)
        with torch.no_grad():
            loc, conf, landms = net(to_input(img[None], torch.device(ctx.device), torch.float32))
        rows.append(compare(f"priors_{k}", priors.numpy(), arrays[f"priors_{k}"], EXACT))
        saturated = float(np.abs(arrays[f"loc_{k}"]).max()) > SATURATED_ACTIVATIONS
        for name, out in (("loc", loc), ("conf", conf), ("landms", landms)):
            rows.append(compare(f"{name}_{k}", _np(out[0]), arrays[f"{name}_{k}"], REL_LOOSE if saturated else REL))
        raw = [torch.from_numpy(arrays[f"{n}_{k}"]) for n in ("loc", "conf", "landms")]
        scale = torch.tensor([w, h] * 5, dtype=torch.float32)
        if f"boxes_all_{k}" in arrays:
            rows.append(compare(f"boxes_all_{k}", (decode_boxes(raw[0], priors) * scale[:4]).numpy(),
                                arrays[f"boxes_all_{k}"], EXACT))
        if f"landms_all_{k}" in arrays:
            rows.append(compare(f"landms_all_{k}", (decode_landmarks(raw[2], priors) * scale).numpy(),
                                arrays[f"landms_all_{k}"], EXACT))
        for name in sorted(n for n in arrays if n.startswith("dets_") and n.endswith(f"_{k}")):
            thr, _ = _dets_threshold(name, arrays, f"_{k}")
            dets = select(*raw, priors, h, w, thr, nms)
            rows.append(compare(f"{name} (stored raw outputs)", dets, arrays[name], EXACT))
    return rows


def retinaface_decode_synth(arrays: dict, ctx: CaseContext) -> list[Result]:
    h, w = (int(v) for v in arrays["hw"])
    priors = prior_boxes(h, w)
    rows = [compare("priors", priors.numpy(), arrays["priors"], EXACT)]
    raw = [torch.from_numpy(arrays[n]) for n in ("loc", "conf", "landms")]
    for name in sorted(n for n in arrays if n.startswith("dets_")):
        conf, nms = _dets_threshold(name, arrays, "")
        rows.append(compare(name, select(*raw, priors, h, w, conf, nms if nms is not None else 0.4),
                            arrays[name], EXACT))
    return rows


# ---------------------------------------------------------------------------------------------- FAN
def fan(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _net(ctx, "fan")
    crop = arrays["crop_rgb"]
    rows = []
    if "resized_rgb_256" in arrays:
        size = arrays["resized_rgb_256"].shape[:2][::-1]
        rows.append(compare("resized_rgb_256", cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR),
                            arrays["resized_rgb_256"], EXACT))
    with torch.no_grad():
        outs = [_np(o[0]) for o in net(fan_input(crop, torch.device(ctx.device), torch.float32))]
    last = outs[-1]
    rows.append(compare("heat_last", last[:-1], arrays["heat_last"], REL_LOOSE))
    if "boundary_last" in arrays:
        rows.append(compare("boundary_last", last[-1], arrays["boundary_last"], REL_LOOSE))
    for name in sorted(n for n in arrays if re.fullmatch(r"heat_module\d+_sub\d+", n)):
        i, stride = (int(v) for v in re.findall(r"\d+", name))
        rows.append(compare(name, outs[i][:, ::stride, ::stride], arrays[name], REL))
    h, w = crop.shape[:2]
    pred98 = heatmap_points(last[None, :-1]).reshape(-1, 2) * np.array([w / last.shape[2], h / last.shape[1]])
    rows.append(compare("pred98", pred98, arrays["pred98"], EXACT))
    pred68 = to_68(pred98)
    rows.append(compare("pred68", pred68, arrays["pred68"], EXACT))
    if "lm68_in_image" in arrays:
        x1, y1 = (int(v) for v in arrays["box_topleft"])
        lm = pred68.copy()
        lm[:, 0] += x1
        lm[:, 1] += y1
        rows.append(compare("lm68_in_image", lm, arrays["lm68_in_image"], EXACT))
    return rows


def fan_decode_synth(arrays: dict, ctx: CaseContext) -> list[Result]:
    return [compare(f"pred_{name[5:]}", heatmap_points(arrays[name]), arrays[f"pred_{name[5:]}"], EXACT)
            for name in sorted(n for n in arrays if n.startswith("heat_"))]


# ---------------------------------------------------------------------------------------------- ParseNet
def parsenet(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _net(ctx, "parsenet")
    dev = torch.device(ctx.device)
    rows = []
    with torch.no_grad():
        if "small_input" in arrays:
            small = _np(net(torch.from_numpy(arrays["small_input"])[None].to(dev))[0])
            rows.append(compare("small_logits", small, arrays["small_logits"], REL))
        x = parse_input(arrays["face_bgr"][None], dev, torch.float32)
        logits = net(x)[0]
        labels = logits.argmax(dim=0).cpu().numpy().astype(np.uint8)
        logits = _np(logits)
    if "small_input" in arrays:
        y0, x0 = _find_window(_np(x[0]), arrays["small_input"])
        rows.append(compare("small_input", _np(x[0])[:, y0:y0 + arrays["small_input"].shape[1],
                                                      x0:x0 + arrays["small_input"].shape[2]],
                            arrays["small_input"], EXACT))
    if "logits_sub8" in arrays:
        stride = logits.shape[1] // arrays["logits_sub8"].shape[1]
        rows.append(compare("logits_sub8", logits[:, ::stride, ::stride], arrays["logits_sub8"], REL))
    if "logits_center64" in arrays:
        side = arrays["logits_center64"].shape[1]
        off = (logits.shape[1] - side) // 2
        rows.append(compare("logits_center64", logits[:, off:off + side, off:off + side],
                            arrays["logits_center64"], REL))
    sure = ~arrays["ambiguous_margin_lt_1e-3"].astype(bool) if "ambiguous_margin_lt_1e-3" in arrays else True
    rows.append(compare("labels (unambiguous px)", np.where(sure, labels, 0), np.where(sure, arrays["labels"], 0),
                        EXACT))
    return rows


def _find_window(full: np.ndarray, window: np.ndarray) -> tuple[int, int]:
    """Top-left of `window` (C,h,w) inside `full` (C,H,W): where its first pixel matches, else the centre."""
    hits = np.argwhere(np.all(full == window[:, :1, :1], axis=0))
    for y, x in hits:
        if np.array_equal(full[:, y:y + window.shape[1], x:x + window.shape[2]], window):
            return int(y), int(x)
    return (full.shape[1] - window.shape[1]) // 2, (full.shape[2] - window.shape[2]) // 2


# ---------------------------------------------------------------------------------------------- GFPGAN
def gfpgan(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _net(ctx, "gfpgan")
    x = gfpgan_input(arrays["face_bgr"][None], torch.device(ctx.device), torch.float32)
    rows = []
    with torch.no_grad():
        w, conditions = net.encode(x)
        rows.append(compare("style_code", _np(w[0]), arrays["style_code"], REL))
        out = net.stylegan_decoder(w, conditions, net.stylegan_decoder.stored_noise())
        rows.append(compare("out_stored_noise", _np(out[0]), arrays["out_stored_noise"], REL))
        rows.append(compare("restored_bgr_stored_noise", to_bgr_uint8(out)[0], arrays["restored_bgr_stored_noise"],
                            UINT8))
        if "restored_bgr_torch_rng" in arrays:
            seed = _meta(ctx, "gfpgan").get("tol", {}).get("torch_rng_seed")
            if seed is None:
                raise KeyError("restored_bgr_torch_rng needs f_gfpgan.tol.torch_rng_seed in run_meta.json")
            noise = net.draw_noise(1, torch.Generator().manual_seed(int(seed)))
            out = net.stylegan_decoder(w, conditions, noise)
            rows.append(compare(f"restored_bgr_torch_rng (seed {seed})", to_bgr_uint8(out)[0],
                                arrays["restored_bgr_torch_rng"], UINT8))
    return rows


# ---------------------------------------------------------------------------------------------- flow
def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Closed-form least-squares 4-DOF similarity [[a,-b,tx],[b,a,ty]] mapping src -> dst (float64)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = len(src)
    a = np.zeros((2 * n, 4))
    a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)]
    a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(n), np.ones(n)]
    p = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)[0]
    return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]]])


def pasteback(arrays: dict, ctx: CaseContext) -> list[Result]:
    frame = arrays["frame_bgr"]
    upscale = arrays["out_parse"].shape[0] // frame.shape[0]
    out_hw = arrays["out_parse"].shape[:2]
    stored = list(arrays["affine"])
    rows = [compare("affine (LMEDS; OpenCV 4 vs 5)", np.stack([estimate_affine(lm) for lm in arrays["landmarks5"]]),
                    arrays["affine"], AFFINE)]
    if "affine_ls" in arrays:
        ls = np.stack([_similarity_lstsq(lm, FACE_TEMPLATE_512) for lm in arrays["landmarks5"]])
        # the stored closed form sits ~1e-5..9e-5 from the float64 optimum (float32-level arithmetic)
        rows.append(compare("affine_ls (float64 least squares)", ls, arrays["affine_ls"], AFFINE))
    rows.append(compare("cropped_bgr", np.stack([warp_face(frame, a) for a in stored]), arrays["cropped_bgr"], EXACT))
    inverses = [inverse_affine(a, upscale) for a in stored]
    rows.append(compare("inverse_affine_scaled_offset", np.stack(inverses), arrays["inverse_affine_scaled_offset"],
                        EXACT))
    rows.append(compare("background_lanczos", upscale_background(frame, upscale), arrays["background_lanczos"],
                        EXACT))
    restored = list(arrays["restored_bgr"])
    inv_restored = np.stack([warp_affine(f, i, out_hw[::-1]) for f, i in zip(restored, inverses, strict=True)])
    rows.append(compare("inv_restored", inv_restored, arrays["inv_restored"], EXACT))
    if "mask_blur2_512_face0" in arrays:
        rows.append(compare("mask_blur2_512_face0", blurred_parse_mask(arrays["parse_labels"][0]).astype(np.float32),
                            arrays["mask_blur2_512_face0"], EXACT))
    masks = [parse_mask(lab) for lab in arrays["parse_labels"]]
    warped = np.stack([warp_mask(m, i, out_hw) for m, i in zip(masks, inverses, strict=True)])
    rows.append(compare("mask_warped", warped.astype(np.float32), arrays["mask_warped"], EXACT))
    rows.append(compare("out_parse", paste_faces(frame, restored, inverses, masks, upscale), arrays["out_parse"],
                        EXACT))
    if "out_plain" in arrays:
        rows.append(compare("out_plain", paste_faces(frame, restored, inverses, None, upscale), arrays["out_plain"],
                            EXACT))
    return rows


def enhance_flow(arrays: dict, ctx: CaseContext) -> list[Result]:
    """`GFPGANer.enhance` with the stored injected detections and stored GFPGAN noise (golden README, file h)."""
    enhancer = Enhancer(_net(ctx, "gfpgan"), _net(ctx, "parsenet"), None, noise="stored")
    frame_rgb = arrays["frame_rgb"]
    faces = [Face(tuple(float(v) for v in r[:4]), float(r[4]), r[5:15].reshape(5, 2)) for r in arrays["injected_dets"]]
    frame_bgr = np.ascontiguousarray(frame_rgb[..., ::-1])
    result = enhancer.run(frame_bgr[None], [usable_landmarks(faces)])[0]
    rows = [compare("landmarks5_used", np.stack(result.landmarks5), arrays["landmarks5_used"], EXACT),
            compare("affine (LMEDS; OpenCV 4 vs 5)", np.stack(result.affines), arrays["affine"], AFFINE),
            compare("inverse_affine_scaled_offset (our affine)", np.stack(result.inverses),
                    arrays["inverse_affine_scaled_offset"], Tolerance("abs", 2e-3)),
            compare("cropped_bgr (our affine)", np.stack(result.crops), arrays["cropped_bgr"], UINT8),
            compare("restored_bgr", np.stack(result.restored), arrays["restored_bgr"], UINT8),
            compare("parse_labels", np.stack(result.labels), arrays["parse_labels"], Tolerance("uint8", 18, 0.001)),
            compare("out_rgb", result.out_bgr[..., ::-1], arrays["out_rgb"], UINT8)]
    if "out_rgb_noface" in arrays:
        noface = enhancer.run(frame_bgr[None], [[]])[0].out_bgr[..., ::-1]
        rows.append(compare("out_rgb_noface", noface, arrays["out_rgb_noface"], EXACT))
    return rows


CASES = {
    "retinaface": retinaface,
    "retinaface_decode_synth": retinaface_decode_synth,
    "fan": fan,
    "fan_decode_synth": fan_decode_synth,
    "parsenet": parsenet,
    "gfpgan": gfpgan,
    "pasteback": pasteback,
    "enhance_flow": enhance_flow,
}
