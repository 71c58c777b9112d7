"""Reference videos (`ref_eyeblink`, `ref_pose`): their per-frame 3DMM coefficients (ARCHITECTURE §5.7, §8.1).

Every frame is cut with the crop box of the first frame (as the reference does for videos), its landmarks are
found on the crop (a frame without a face reuses the previous frame's landmarks), aligned, and run through the
3DMM net in small batches. Only the first `max_frames` frames are read: the sequence is tiled from its start,
so later frames are never used.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import cv2
import numpy as np

from .align import align_face, five_points, flip_y
from .containers import VIDEO_DEMUXERS, describe, ffmpeg_input, sniff_file
from .crop import apply_crop, crop_box
from .encode import ffmpeg_exe
from .errors import InvalidVideo, NoFaceDetected
from .preprocess import coeff_from_aligned, detect_for_crop, landmarks_in_crop

if TYPE_CHECKING:
    from torch import nn

    from .face import FaceAnalyzer

log = logging.getLogger(__name__)

RECON_BATCH = 8   # aligned crops per 3DMM forward pass
BMP_HEADER_BYTES = 14  # "BM", file size (uint32 LE), reserved, pixel offset


def read_frames(path: Path, max_frames: int) -> Iterator[np.ndarray]:
    """Yield up to `max_frames` frames (H,W,3) uint8 RGB. InvalidVideo if none can be decoded.

    ffmpeg decodes the file as the container its first bytes name (MP4/MOV, WebM/MKV, AVI; nothing else) with
    only the file protocol, and streams the frames as BMP images (each carries its own size, so rotated
    videos need no probing)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidVideo(f"reference video {path} does not exist")
    demuxer = sniff_file(path)
    if demuxer not in VIDEO_DEMUXERS:
        raise InvalidVideo(f"{path.name} is not a video container this package reads ({describe(VIDEO_DEMUXERS)})")
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", *ffmpeg_input(path, demuxer),
           "-map", "0:v:0", "-frames:v", str(max_frames), "-f", "image2pipe", "-c:v", "bmp", "-pix_fmt", "bgr24",
           "pipe:1"]
    count = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        try:
            while (bgr := _next_bmp(proc.stdout)) is not None:
                count += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            proc.kill()
            stderr = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
    if count == 0:
        raise InvalidVideo(f"no video frames could be decoded from {path.name}: {stderr[-300:] or 'no detail'}")


def _next_bmp(stream: IO[bytes]) -> np.ndarray | None:
    """The next BMP of an image2pipe stream (its file header holds its byte size), decoded; None at the end."""
    header = stream.read(BMP_HEADER_BYTES)
    if len(header) < BMP_HEADER_BYTES or header[:2] != b"BM":
        return None
    body = stream.read(int.from_bytes(header[2:6], "little") - BMP_HEADER_BYTES)
    return cv2.imdecode(np.frombuffer(header + body, np.uint8), cv2.IMREAD_COLOR)


def tile_to(seq: np.ndarray, length: int) -> np.ndarray:
    """Repeat a (N,C) sequence from its start to exactly `length` rows (whole repeats, then a part)."""
    reps = -(-length // len(seq))
    return np.concatenate([seq] * reps, axis=0)[:length]


def _crop_frame(frame: np.ndarray, box, mode: str, size: int) -> np.ndarray:
    if box is None:
        return cv2.resize(frame, (size, size))
    return cv2.resize(apply_crop(frame, box, mode), (size, size))


def reference_coeffs(analyzer: FaceAnalyzer, recon_net: nn.Module, path: Path, *, mode: str, size: int,
                     max_frames: int) -> np.ndarray:
    """(N,73) float32 coefficients of the first N <= max_frames frames of a video."""
    frames = read_frames(path, max_frames)
    first = next(frames)
    try:
        face = detect_for_crop(analyzer, first)
    except NoFaceDetected as e:
        raise NoFaceDetected(f"no face in the first frame of the reference video {Path(path).name}") from e
    lm_first = analyzer.landmarks68(first, face)
    height, width = first.shape[:2]
    box = None if mode == "resize" else crop_box(lm_first, (width, height))
    previous = landmarks_in_crop(lm_first, box, mode, (width, height), size)

    coeffs, images, params = [], [], []
    for frame in _chain(first, frames):
        crop = _crop_frame(frame, box, mode, size)
        try:
            previous = analyzer.landmarks68(crop)
        except NoFaceDetected:
            log.debug("reference frame without a face: reusing the previous landmarks")
        aligned = align_face(crop, five_points(flip_y(previous, size)))
        images.append(aligned.image224)
        params.append(aligned.trans_params)
        if len(images) == RECON_BATCH:
            coeffs.append(coeff_from_aligned(recon_net, np.stack(images), np.stack(params)))
            images, params = [], []
    if images:
        coeffs.append(coeff_from_aligned(recon_net, np.stack(images), np.stack(params)))
    return np.concatenate(coeffs, axis=0)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
