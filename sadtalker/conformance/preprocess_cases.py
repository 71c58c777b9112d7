"""Golden cases of the preprocessing math: crop box (§9.3) and five-point alignment (§9.4).

Case file `i_crop_and_align.npz`: every `case{k}_*` group present is checked (integers exactly, floats to
1e-6), then the alignment outputs (224 crop exactly: PIL bicubic is used).
"""

from __future__ import annotations

import re

import numpy as np

from ..align import align_face, five_points, flip_y, pos, template_lm5
from ..crop import crop_box
from .core import CaseContext, Result, Tolerance, compare

EXACT = Tolerance("exact")
FLOAT = Tolerance("abs", 1e-6)


def _crop_case_ids(arrays: dict) -> list[str]:
    ids = {m.group(1) for key in arrays if (m := re.match(r"(case\d+)_lm68$", key))}
    return sorted(ids, key=lambda s: int(s[4:]))


def _crop_results(arrays: dict, case: str) -> list[Result]:
    box = crop_box(arrays[f"{case}_lm68"], tuple(int(v) for v in arrays[f"{case}_image_wh"]))
    produced = {
        "rsize": (box.rsize, EXACT),
        "crop": (box.crop, EXACT),
        "quad": (box.quad, FLOAT),
        "crop_info_size": (box.info_size, EXACT),
        "crop_mode_box": (box.tight_box, EXACT),
        "extcrop_box": (box.crop, EXACT),
    }
    return [compare(f"{case}_{name}", value, arrays[f"{case}_{name}"], tol)
            for name, (value, tol) in produced.items() if f"{case}_{name}" in arrays]


def _align_results(arrays: dict) -> list[Result]:
    image = arrays["align_image_uint8"]
    flipped = flip_y(arrays["align_lm68_image_coords"], image.shape[0])
    lm5 = five_points(flipped)
    t, s = pos(lm5, template_lm5().astype(np.float64))
    aligned = align_face(image, lm5, flipped)
    produced = {
        "lm3d_std_5": (template_lm5(), EXACT),
        "align_lm68_yflipped": (flipped, FLOAT),
        "align_lm5": (lm5, FLOAT),
        "align_pos_t": (t, FLOAT),
        "align_pos_s": (s, FLOAT),
        "align_trans_params": (aligned.trans_params, FLOAT),
        "align_image224_uint8": (aligned.image224, EXACT),
        "align_lm_new": (aligned.lm224, FLOAT),
    }
    return [compare(name, value, arrays[name], tol) for name, (value, tol) in produced.items() if name in arrays]


def crop_and_align(arrays: dict, ctx: CaseContext) -> list[Result]:
    results = []
    for case in _crop_case_ids(arrays):
        results.extend(_crop_results(arrays, case))
    if "align_image_uint8" in arrays:
        results.extend(_align_results(arrays))
    return results


CASES = {"crop_and_align": crop_and_align}
