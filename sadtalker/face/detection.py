"""RetinaFace post-processing: priors, decoding, threshold, ordering and NMS (SPEC §2.1, §2.3-2.5).

Decoding runs in float32 torch ops in the reference's order so boxes match it bit for bit; NMS follows
torchvision's `ops.nms` semantics (written here; torchvision is not a dependency).
"""

from __future__ import annotations

import numpy as np
import torch

from .constants import BGR_MEAN, MIN_SIZES, NMS_IOU, STEPS, VARIANCE
from .retinaface import RetinaFace

NO_FACE = np.zeros((0, 15), dtype=np.float32)


def prior_boxes(height: int, width: int) -> torch.Tensor:
    """(P,4) float32 [cx, cy, w, h] normalised to the image, in head-output order (stride 8 first)."""
    rows = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        fh, fw = -(-height // step), -(-width // step)
        i, j, s = np.meshgrid(np.arange(fh), np.arange(fw), np.asarray(sizes, dtype=np.float64), indexing="ij")
        cx = (j + 0.5) * step / width   # float64, as the reference's Python arithmetic
        cy = (i + 0.5) * step / height
        rows.append(np.stack([cx, cy, s / width, s / height], axis=-1).reshape(-1, 4))
    return torch.from_numpy(np.concatenate(rows).astype(np.float32))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """loc (...,P,4) offsets -> (...,P,4) [x1,y1,x2,y2] normalised."""
    boxes = torch.cat((priors[..., :2] + loc[..., :2] * VARIANCE[0] * priors[..., 2:],
                       priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCE[1])), -1)
    boxes[..., :2] -= boxes[..., 2:] / 2
    boxes[..., 2:] += boxes[..., :2]
    return boxes


def decode_landmarks(landms: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """landms (...,P,10) offsets -> (...,P,10) points [x0,y0,...,x4,y4] normalised."""
    return torch.cat([priors[..., :2] + landms[..., 2 * m:2 * m + 2] * VARIANCE[0] * priors[..., 2:]
                      for m in range(5)], dim=-1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept, torchvision semantics: stable descending score order, IoU > threshold suppresses."""
    boxes = boxes.astype(np.float32, copy=False)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)).sort(
        stable=True, descending=True).indices.numpy()
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for n, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[n + 1:]
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # inf/degenerate boxes: NaN IoU never suppresses
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > np.float32(iou_threshold)]] = True
    return np.asarray(keep, dtype=np.int64)


def select(loc: torch.Tensor, conf: torch.Tensor, landms: torch.Tensor, priors: torch.Tensor,
           height: int, width: int, conf_threshold: float, nms_threshold: float = NMS_IOU) -> np.ndarray:
    """One image's raw outputs (P,·) -> (K,15) float32 [x1,y1,x2,y2,score,10 landmark coords], best first."""
    loc, conf, landms, priors = (t.detach().float().cpu() for t in (loc, conf, landms, priors))
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    boxes = (decode_boxes(loc, priors) * scale).numpy()
    points = (decode_landmarks(landms, priors) * scale.repeat(3)[:10]).numpy()
    scores = conf[:, 1].numpy()
    inds = np.where(scores > conf_threshold)[0]
    return _order_and_suppress(boxes[inds], points[inds], scores[inds], nms_threshold)


def _order_and_suppress(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                        nms_threshold: float) -> np.ndarray:
    """Thresholded candidates -> (K,15) rows, best first, after NMS."""
    if len(scores) == 0:
        return NO_FACE.copy()
    order = scores.argsort()[::-1]  # numpy's default sort: the reference's tie order (SPEC §2.5)
    boxes, points, scores = boxes[order], points[order], scores[order]
    keep = nms(boxes, scores, nms_threshold)
    dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)
    return np.concatenate((dets[keep], points[keep]), axis=1).astype(np.float32)


def to_input(images_bgr: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(N,H,W,3) uint8 taken as BGR -> (N,3,H,W) minus the BGR mean."""
    x = torch.from_numpy(np.ascontiguousarray(images_bgr)).to(device).permute(0, 3, 1, 2).float()
    x = x - torch.tensor(BGR_MEAN, device=device).view(1, 3, 1, 1)
    return x.to(dtype)


@torch.no_grad()
def detect_faces(net: RetinaFace, images_bgr: np.ndarray, conf_threshold: float,
                 nms_threshold: float = NMS_IOU) -> list[np.ndarray]:
    """Detections for a batch of same-size images (N,H,W,3) uint8 taken as BGR; one (K,15) array each."""
    p = next(net.parameters())
    _, h, w, _ = images_bgr.shape
    loc, conf, landms = net(to_input(images_bgr, p.device, p.dtype))
    priors = prior_boxes(h, w)
    return [select(loc[n], conf[n], landms[n], priors, h, w, conf_threshold, nms_threshold)
            for n in range(len(images_bgr))]


@torch.no_grad()
def detect_faces_device(net: RetinaFace, images_bgr: torch.Tensor, conf_threshold: float,
                        nms_threshold: float = NMS_IOU) -> list[np.ndarray]:
    """`detect_faces` for (N,3,H,W) 0..255 BGR tensors on the network's device: the forward and the decoding
    of every prior run batched there; only the candidates above the threshold (a few rows) go to the host,
    once for the whole batch, for the ordering and NMS."""
    p = next(net.parameters())
    n, _, h, w = images_bgr.shape
    x = images_bgr.to(p.device, torch.float32) - torch.tensor(BGR_MEAN, device=p.device).view(1, 3, 1, 1)
    loc, conf, landms = (t.float() for t in net(x.to(p.dtype)))
    priors = prior_boxes(h, w).to(p.device)
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=p.device)
    boxes = decode_boxes(loc, priors) * scale                                # N x P x 4
    points = decode_landmarks(landms, priors) * scale.repeat(3)[:10]        # N x P x 10
    scores = conf[..., 1]
    keep = scores > conf_threshold
    rows = torch.cat([boxes, scores[..., None], points], dim=-1)[keep].cpu().numpy()   # K x 15, one copy
    owner = keep.nonzero()[:, 0].cpu().numpy()
    return [_order_and_suppress(rows[owner == i, :4], rows[owner == i, 5:], rows[owner == i, 4], nms_threshold)
            for i in range(n)]
