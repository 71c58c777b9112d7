"""Milliseconds per frame of each post-processing step, numpy/OpenCV reference path vs the device path.

    python bench/postprocess.py [--device cpu|cuda] [--batch 4] [--repeat 3]

Real images (skimage's astronaut and coffee), no networks: the bilinear resize of a 256 crop to its output
size, the full-mode paste-back into a 1280x720 photo (resize to the box + Poisson clone), and the enhancer's
post-processing of one face in a 512x512 frame (align warp, ParseNet mask blur, inverse warps, blend, 2x
Lanczos background). The device path runs batched on --device (the CPU here runs the same torch code).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sadtalker import imageops  # noqa: E402
from sadtalker.face import paste, paste_device  # noqa: E402
from sadtalker.face.constants import UPSCALE  # noqa: E402
from sadtalker.pasteback import PasteTarget, paste_frames, paste_frames_device  # noqa: E402


def timed(fn, repeat: int, device: torch.device) -> float:
    """Best wall time of `repeat` runs in seconds (after one warm-up), synchronised on CUDA."""
    best = float("inf")
    for n in range(repeat + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if n:
            best = min(best, time.perf_counter() - start)
    return best


def cases(batch: int, device: torch.device):
    from skimage import data

    face = data.astronaut()
    crops = np.stack([face[20 + n:276 + n, 90:346] for n in range(batch)])
    photo = cv2.resize(data.coffee(), (1280, 720))
    target = PasteTarget(photo, (500, 150, 800, 470))
    photo_t = torch.from_numpy(photo).to(device).permute(2, 0, 1)[None].float()
    crops_t = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float()
    labels = np.zeros((512, 512), np.uint8)
    labels[120:420, 130:380] = 1   # a face-shaped region of class 1 (skin)
    lm = np.float32([[200, 220], [310, 220], [255, 290], [215, 350], [300, 350]])
    frames512 = np.stack([cv2.resize(face[:400, 50:450], (512, 512))] * batch)
    frames512_t = torch.from_numpy(frames512).to(device).permute(0, 3, 1, 2).float()
    affine = paste.estimate_affine(lm)
    inverse = paste.inverse_affine(affine, UPSCALE)
    labels_t = torch.from_numpy(labels).to(device)

    def enhancer_cpu():
        for frame in frames512:
            bgr = frame[..., ::-1]
            crop = paste.warp_face(bgr, affine)
            paste.paste_faces(bgr, [crop], [inverse], [paste.parse_mask(labels)], UPSCALE)

    def enhancer_device():
        owners = list(range(batch))
        crop = paste_device.warp_faces(frames512_t, owners, np.stack([affine] * batch))
        masks = paste_device.parse_masks(labels_t.expand(batch, -1, -1))
        out = paste_device.paste_faces(frames512_t, owners, crop, np.stack([inverse] * batch), masks, UPSCALE)
        imageops.to_host_uint8(out)

    return [
        ("resize 256 -> 256x270", lambda: [cv2.resize(c, (256, 270)) for c in crops],
         lambda: imageops.to_host_uint8(imageops.resize_bilinear(crops_t, (256, 270)))),
        ("full paste-back 1280x720", lambda: paste_frames(np.stack([cv2.resize(c, (256, 270)) for c in crops]), target),
         lambda: imageops.to_host_uint8(paste_frames_device(imageops.resize_bilinear(crops_t, (256, 270)), target,
                                                            photo_t))),
        ("enhancer post 512 -> 1024", enhancer_cpu, enhancer_device),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"post-processing, ms per frame, batch {args.batch}, device path on {device}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'step':<28}{'numpy/OpenCV':>14}{'device path':>14}")
    with torch.inference_mode():
        for name, reference, on_device in cases(args.batch, device):
            cpu_ms = timed(reference, args.repeat, torch.device("cpu")) * 1000 / args.batch
            dev_ms = timed(on_device, args.repeat, device) * 1000 / args.batch
            print(f"{name:<28}{cpu_ms:>14.1f}{dev_ms:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
