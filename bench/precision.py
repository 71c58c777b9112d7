"""Each precision mode against fp32 on the golden inputs: max and mean absolute error on 0-255, share of values
off by more than one level, PSNR; and the same for GFPGAN + ParseNet on the face golden set.

    python -m bench.precision [--device cpu|cuda] [--frames 4] [--modes fp32,tf32,bf16,fp16] [--no-face]
                              [--golden ../shared/reference/sadtalker/golden]
                              [--face-golden ../shared/reference/facemodels/golden] [--json]

Renderer rows: the end-to-end golden case j_e2e_still0 (stand-in weights from its manifests and seed, the
case's waveform -> coefficients in fp32, then the generator in each mode with the fp32 islands of
sadtalker/precision.py) renders the golden's kept frames; the fp32 row compares fp32 with the golden frames
themselves. Face rows: GFPGAN on the golden aligned crop, then ParseNet on the restored face (labels: share
of pixels whose class differs). Modes a device cannot run as themselves are listed as unavailable.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sadtalker import animate  # noqa: E402
from sadtalker.precision import (  # noqa: E402
    PRECISIONS,
    apply_backend_flags,
    cast_network,
    emulate_cpu_convs,
    storage_dtype,
    unavailable_reason,
)

REFERENCE = ROOT.parent / "shared" / "reference"


def image_errors(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """uint8 images (any shape): max/mean |a-e| in levels, % of values off by > 1 level, PSNR (dB, inf if equal)."""
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return {"max_abs": int(diff.max()), "mean_abs": round(float(diff.mean()), 4),
            "pct_over_1": round(100.0 * float(np.mean(diff > 1)), 4),
            "psnr_db": math.inf if mse == 0 else round(10 * math.log10(255.0**2 / mse), 2)}


def renderer_rows(golden: Path, device: str, modes: list[str], frames: int) -> list[dict]:
    from sadtalker.conformance.core import CaseContext
    from sadtalker.conformance.model_cases import _coefficients, _e2e_model

    ctx = CaseContext.open(golden, device)
    arrays = dict(np.load(golden / "j_e2e_still0.npz"))
    size = arrays["source_image_uint8"].shape[0]
    model = _e2e_model(ctx, size)
    first = arrays["first_coeff_73"].reshape(-1).astype(np.float32)
    coeffs = _coefficients(model, arrays, ctx)["coeff_3dmm_70"]
    target = animate.target_coefficients(coeffs, first, "crop", still=bool(int(arrays["still"])),
                                         expression_scale=float(arrays["expression_scale"]))
    kept = [int(i) for i in arrays["frames_kept_index"]][:frames]
    windows = animate.semantic_windows(target, np.asarray(kept))
    golden_frames = arrays["frames_uint8_kept"][:len(kept)]
    rows, reference = [], None
    for mode in modes:
        reason = unavailable_reason(mode, device)
        if reason:
            rows.append({"network": "renderer", "mode": mode, "unavailable": reason})
            continue
        apply_backend_flags(mode, device)
        moded = copy.copy(model)
        moded.generator = copy.deepcopy(model.generator).to(storage_dtype(mode))
        if torch.device(device).type == "cpu":
            emulate_cpu_convs(moded.generator, storage_dtype(mode))
        moded.dtype = storage_dtype(mode)
        began = time.perf_counter()
        with torch.inference_mode():
            source = animate.encode_source(moded, arrays["source_image_uint8"], first, "crop")
            out = animate.quantize(animate.render_float_frames(moded, source, windows, "crop")[0])
        seconds = time.perf_counter() - began
        reference = out if mode == "fp32" else reference
        against = golden_frames if mode == "fp32" else reference
        row = {"network": "renderer", "mode": mode, "against": "golden" if mode == "fp32" else "fp32",
               "frames": len(kept), "seconds": round(seconds, 2), **image_errors(out, against)}
        rows.append(row)
    apply_backend_flags("fp32", device)
    return rows


def face_rows(golden: Path, device: str, modes: list[str]) -> list[dict]:
    from sadtalker.conformance.core import CaseContext
    from sadtalker.conformance.face_cases import _net
    from sadtalker.face.gfpgan import to_bgr_uint8, to_input
    from sadtalker.face.parsenet import parse_input

    ctx = CaseContext.open(golden, device)
    gfpgan_case = dict(np.load(golden / "f_gfpgan.npz"))
    crops = gfpgan_case["face_bgr"][None]   # 1 x 512 x 512 x 3 aligned crop
    gfpgan32, parsenet32 = _net(ctx, "gfpgan"), _net(ctx, "parsenet")
    rows, ref_faces, ref_labels = [], None, None
    for mode in modes:
        reason = unavailable_reason(mode, device)
        if reason:
            rows.append({"network": "gfpgan+parsenet", "mode": mode, "unavailable": reason})
            continue
        apply_backend_flags(mode, device)
        gfpgan = cast_network(copy.deepcopy(gfpgan32), mode)
        parsenet = cast_network(copy.deepcopy(parsenet32), mode)
        dtype = storage_dtype(mode)
        began = time.perf_counter()
        with torch.inference_mode():
            faces = to_bgr_uint8(gfpgan(to_input(crops, torch.device(device), dtype), None))  # stored noise
            labels = parsenet(parse_input(faces, torch.device(device), dtype)).argmax(1).cpu().numpy()
        seconds = time.perf_counter() - began
        if mode == "fp32":
            ref_faces, ref_labels = faces, labels
            rows.append({"network": "gfpgan+parsenet", "mode": mode, "against": "golden", "frames": len(crops),
                         "seconds": round(seconds, 2),
                         **image_errors(faces[0], gfpgan_case["restored_bgr_stored_noise"])})
            continue
        rows.append({"network": "gfpgan+parsenet", "mode": mode, "against": "fp32", "frames": len(crops),
                     "seconds": round(seconds, 2), **image_errors(faces, ref_faces),
                     "labels_differ_pct": round(100.0 * float(np.mean(labels != ref_labels)), 4)})
    apply_backend_flags("fp32", device)
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'network':<17}{'mode':<6}{'vs':<8}{'max':>5}{'mean':>9}{'%>1lv':>9}{'PSNR dB':>9}{'s':>8}  note"
    lines = [head]
    for r in rows:
        if "unavailable" in r:
            lines.append(f"{r['network']:<17}{r['mode']:<6}{'':<8}{'':>5}{'':>9}{'':>9}{'':>9}{'':>8}  "
                         f"unavailable: {r['unavailable']}")
            continue
        note = f"labels differ {r['labels_differ_pct']} %" if "labels_differ_pct" in r else ""
        lines.append(f"{r['network']:<17}{r['mode']:<6}{r['against']:<8}{r['max_abs']:>5}{r['mean_abs']:>9.4f}"
                     f"{r['pct_over_1']:>9.4f}{r['psnr_db']:>9}{r['seconds']:>8}  {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=4, help="golden kept frames to render (1-4)")
    parser.add_argument("--modes", default=",".join(PRECISIONS))
    parser.add_argument("--golden", type=Path, default=REFERENCE / "sadtalker" / "golden")
    parser.add_argument("--face-golden", type=Path, default=REFERENCE / "facemodels" / "golden")
    parser.add_argument("--no-face", action="store_true", help="skip the GFPGAN + ParseNet rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in PRECISIONS]
    if bad or "fp32" not in modes:
        parser.error(f"--modes must include fp32 and only {', '.join(PRECISIONS)}")
    modes = ["fp32"] + [m for m in modes if m != "fp32"]
    rows = renderer_rows(args.golden, args.device, modes, args.frames)
    if not args.no_face:
        rows += face_rows(args.face_golden, args.device, modes)
    if args.json:
        print(json.dumps({"device": args.device, "rows": rows}))
    else:
        print(f"precision vs fp32 on the golden inputs, device {args.device}")
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
