"""Source-image preprocessing: decode, find the face, crop for a mode, and extract its 3DMM (ARCHITECTURE §9).

Two landmark passes as in the reference: one on the original photo to place the crop (§9.3), one on the
size x size crop for the five-point alignment of the 3DMM net (§9.4). The crop's 73-vector is
[expression 64, angles 3, translation 3, crop params s, tx, ty].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .align import align_face, five_points, flip_y
from .crop import MODES, CropBox, apply_crop, crop_box, paste_box
from .errors import InvalidImage, NoFaceDetected
from .pasteback import PasteTarget, scale_box

if TYPE_CHECKING:
    from torch import nn

    from .face import Face, FaceAnalyzer

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 32          # pixels; smaller images cannot hold a detectable face
MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class SourceFace:
    """The prepared source: renderer input, its 3DMM and where the video frames come from / go back to.

    image: (size,size,3) uint8 RGB crop; coeff: (73,) float32; info_size: (w0,h0) of the face region
    (decides the output aspect ratio, §8.4); paste: photo + box for full modes, else None.
    """

    image: np.ndarray
    coeff: np.ndarray
    info_size: tuple[int, int]
    face: Face | None
    box: CropBox | None
    paste: PasteTarget | None


def read_image(path: Path) -> np.ndarray:
    """Decode any image OpenCV or Pillow can read -> (H,W,3) uint8 RGB. InvalidImage otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InvalidImage(f"cannot read image {path}: {e.strerror}") from e
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is not None:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InvalidImage(f"{Path(path).name} is not a readable image (JPEG, PNG, WebP, BMP, ...)") from e
    height, width = rgb.shape[:2]
    if min(width, height) < MIN_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise InvalidImage(f"image is {width}x{height}: sides must be >= {MIN_IMAGE_SIDE} px "
                           f"and the area <= {MAX_IMAGE_PIXELS} px")
    return np.ascontiguousarray(rgb)


def largest_face(faces: list[Face]) -> Face:
    """The face with the largest box area. NoFaceDetected when the list is empty."""
    if not faces:
        raise NoFaceDetected("no face found in the image; use a photo with one clearly visible, frontal face")
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def faces_for_crop(analyzer: FaceAnalyzer, rgb: np.ndarray) -> list[Face]:
    """Every face of the photo, detected as the reference's cropping pass does (largest first).

    With the official RetinaFace the reference hands the RGB array to a detector that expects BGR, so the
    mean is subtracted from swapped channels (facemodels SPEC §7); we reproduce that by passing the
    channel-reversed image, so that boxes match the reference. The dlib fallback gets plain RGB.
    """
    detector_input = rgb[..., ::-1] if analyzer.backend.startswith("retinaface") else rgb
    return analyzer.detect(np.ascontiguousarray(detector_input))


def detect_for_crop(analyzer: FaceAnalyzer, rgb: np.ndarray) -> Face:
    """The largest face of the photo (NoFaceDetected when there is none)."""
    return largest_face(faces_for_crop(analyzer, rgb))


def crop_source(rgb: np.ndarray, lm68: np.ndarray | None, mode: str, size: int):
    """(size,size,3) crop for `mode`, the crop box (None for `resize`) and crop_info (w0, h0)."""
    if mode not in MODES:
        raise ValueError(f"preprocess must be one of {', '.join(MODES)}, got {mode!r}")
    height, width = rgb.shape[:2]
    if mode == "resize":
        return cv2.resize(rgb, (size, size)), None, (width, height)
    box = crop_box(lm68, (width, height))
    region = apply_crop(rgb, box, mode)
    return cv2.resize(region, (size, size)), box, box.info_size


def landmarks_in_crop(lm68: np.ndarray, box: CropBox | None, mode: str, image_wh: tuple[int, int],
                      size: int) -> np.ndarray:
    """Map photo landmarks (68,2) into the size x size crop (used when the crop pass finds no face)."""
    lm = np.asarray(lm68, dtype=np.float64).copy()
    if box is None:
        return (lm * [size / image_wh[0], size / image_wh[1]]).astype(np.float32)
    lm *= [box.rsize[0] / image_wh[0], box.rsize[1] / image_wh[1]]
    x0, y0, x1, y1 = box.crop
    if mode in ("crop", "full"):
        lx, ly, rx, ry = box.quad
        x0, y0 = x0 + int(lx), y0 + int(ly)
        x1, y1 = min(x0 + int(rx) - int(lx), x1), min(y0 + int(ry) - int(ly), y1)
    lm = (lm - [x0, y0]) * [size / (x1 - x0), size / (y1 - y0)]
    return lm.astype(np.float32)


def crop_landmarks(analyzer: FaceAnalyzer, crop: np.ndarray, fallback: np.ndarray | None) -> np.ndarray:
    """Second landmark pass on the crop; `fallback` (68,2) when the detector misses the tight crop."""
    try:
        return analyzer.landmarks68(crop)
    except NoFaceDetected:
        if fallback is None:
            raise
        log.info("no face re-detected on the %dpx crop; using the photo's landmarks mapped into it",
                 crop.shape[0])
        return fallback


@torch.no_grad()
def extract_coeff(recon_net: nn.Module, crop: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """73-vector of a square crop (S,S,3) uint8 with its landmarks (68,2) in crop pixels (§9.4)."""
    height = crop.shape[0]
    flipped = flip_y(lm68, height)
    aligned = align_face(crop, five_points(flipped))
    return coeff_from_aligned(recon_net, aligned.image224[None], aligned.trans_params[None])[0]


@torch.no_grad()
def coeff_from_aligned(recon_net: nn.Module, images224: np.ndarray, trans_params: np.ndarray) -> np.ndarray:
    """(N,224,224,3) uint8 aligned crops + (N,5) trans params -> (N,73) float32 coefficients."""
    param = next(recon_net.parameters())
    x = torch.from_numpy(images224.astype(np.float64) / 255.0).permute(0, 3, 1, 2)   # N x 3 x 224 x 224
    full = recon_net(x.to(device=param.device, dtype=torch.float32).to(param.dtype)).float().cpu().numpy()
    return np.concatenate([full[:, 80:144], full[:, 224:227], full[:, 254:257], trans_params[:, 2:5]],
                          axis=1).astype(np.float32)


def prepare_source(analyzer: FaceAnalyzer, recon_net: nn.Module, rgb: np.ndarray, mode: str,
                   size: int) -> SourceFace:
    """Photo (H,W,3) uint8 RGB -> SourceFace for `mode` at renderer size `size`."""
    height, width = rgb.shape[:2]
    face = detect_for_crop(analyzer, rgb)
    lm68 = analyzer.landmarks68(rgb, face)
    crop, box, info_size = crop_source(rgb, lm68, mode, size)
    mapped = landmarks_in_crop(lm68, box, mode, (width, height), size)
    coeff = extract_coeff(recon_net, crop, crop_landmarks(analyzer, crop, mapped))
    paste = None
    if mode in ("full", "extfull"):
        # Deviation: the reference pastes shrunk-image boxes into the unshrunk photo (§10 caveat).
        paste = PasteTarget(rgb, scale_box(paste_box(box, mode), box.shrink))
    return SourceFace(crop, coeff, info_size, face, box, paste)
