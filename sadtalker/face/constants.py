"""Constants of the face models (SPEC; copied from the reference `constants.json` into ours)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_C = json.loads((Path(__file__).with_name("constants.json")).read_text())

# RetinaFace (SPEC §2)
BGR_MEAN: tuple[float, float, float] = tuple(_C["retinaface"]["bgr_mean"])
MIN_SIZES: tuple[tuple[int, ...], ...] = tuple(tuple(s) for s in _C["retinaface"]["min_sizes"])
STEPS: tuple[int, ...] = tuple(_C["retinaface"]["steps"])
VARIANCE: tuple[float, float] = tuple(_C["retinaface"]["variance"])
DETECT_THRESHOLD: float = _C["retinaface"]["sadtalker_and_gfpgan_conf_threshold"]  # 0.97
NMS_IOU: float = _C["retinaface"]["nms_iou"]

# FAN (SPEC §3)
FAN_INPUT_SIZE: int = _C["fan"]["input_size"]
HEATMAP_SIZE: int = _C["fan"]["heatmap_size"]
NUM_LANDMARKS: int = _C["fan"]["num_landmarks"]
SUBPIXEL_OFFSET: float = _C["fan"]["subpixel_offset"]
CENTER_OFFSET: float = _C["fan"]["center_offset"]
LANDMARK_98_TO_68: tuple[tuple[int, ...], ...] = tuple(tuple(m) for m in _C["landmark_98_to_68"]["map"])

# GFPGAN enhancer flow (SPEC §5-6)
_H = _C["face_restore_helper_sadtalker"]
FACE_TEMPLATE_512 = np.array(_C["ffhq_template_512_5pt"]["points_xy"], dtype=np.float32)  # (5,2) x,y
FACE_SIZE: int = _H["face_size"]
UPSCALE: int = _H["upscale_factor"]
EYE_DIST_THRESHOLD_PX: float = _H["eye_dist_threshold_px"]
WARP_BORDER_BGR: tuple[int, int, int] = tuple(_H["warp_border_value_bgr"])
PARSE_BLUR_KSIZE: int = _H["parse_gaussian_blur"]["ksize"][0]
PARSE_BLUR_SIGMA: float = _H["parse_gaussian_blur"]["sigma"]
PARSE_BLUR_TIMES: int = _H["parse_gaussian_blur"]["times"]
PARSE_BORDER_PX: int = _H["parse_border_zeroed_px"]
PARSE_COLORMAP = np.array(_C["parsenet_mask_colormap_19"], dtype=np.float64)  # label -> mask value 0/255
