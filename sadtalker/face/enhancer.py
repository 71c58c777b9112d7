"""GFPGAN face enhancer as SadTalker runs it (`--enhancer gfpgan`): detect, align, restore, paste back, 2× output.

SPEC §5.5-§6. Every face of a batch of frames is restored in one GFPGAN forward (chunks of `max_faces`) and
parsed in one ParseNet forward. GFPGAN's `weight` argument (0.5 in SadTalker) has no effect in the reference
and has none here. Noise: "random" draws the 15 noise maps per face from a seeded CPU generator in the
reference's order (equal to the reference run after `torch.manual_seed(seed)`); "stored" uses the noise
buffers of the weight file (the reference's `randomize_noise=False`; fully deterministic).
`enhance` is the numpy/OpenCV reference flow; `enhance_device` runs the same flow on the frames' device
(`paste_device`), within one level of it (docs/performance.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingCheckpoints
from . import paste_device
from .analyzer import Face, FaceAnalyzer, check_rgb, pick_device
from .constants import DETECT_THRESHOLD, EYE_DIST_THRESHOLD_PX, UPSCALE
from .gfpgan import GFPGANv1Clean, to_bgr_uint8, to_input
from .parsenet import ParseNet, parse_input
from .paste import estimate_affine, inverse_affine, parse_mask, paste_faces, warp_face
from .weights import (
    GFPGAN_FILE,
    PARSING_FILE,
    face_dirs_of,
    find_face_file,
    flat_state,
    gfpgan_state,
    load_network,
)

log = logging.getLogger(__name__)

NOISE_MODES = ("random", "stored")


@dataclass
class FrameResult:
    """One enhanced frame and what led to it (BGR, as the reference's helper holds them)."""

    out_bgr: np.ndarray                                   # (2H,2W,3) uint8
    landmarks5: list[np.ndarray] = field(default_factory=list)
    affines: list[np.ndarray] = field(default_factory=list)
    inverses: list[np.ndarray] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    restored: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)


def usable_landmarks(faces: list[Face]) -> list[np.ndarray]:
    """5-point sets of the faces the reference keeps: eye distance >= 5 px (all faces, detector order)."""
    kept = []
    for face in faces:
        lm = face.landmarks5
        if lm is None:
            continue
        if float(np.linalg.norm([lm[0, 0] - lm[1, 0], lm[0, 1] - lm[1, 1]])) < EYE_DIST_THRESHOLD_PX:
            continue
        kept.append(np.asarray(lm, dtype=np.float32))
    return kept


class Enhancer:
    def __init__(self, gfpgan: GFPGANv1Clean, parsenet: ParseNet, analyzer: FaceAnalyzer | None, *,
                 noise: str = "random", seed: int = 0, max_faces: int = 8, files: dict[str, str] | None = None):
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, not {noise!r}")
        self.gfpgan, self.parsenet, self.analyzer = gfpgan, parsenet, analyzer
        self.noise, self.max_faces = noise, max_faces
        self.generator = torch.Generator().manual_seed(seed)
        self.files = files or {}

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str | torch.device | None = None,
             analyzer: FaceAnalyzer | None = None, *, noise: str = "random", seed: int = 0,
             face_dirs: Sequence[Path] | None = None) -> Enhancer:
        """GFPGANv1.4.pth and parsing_parsenet.pth from `face_dirs` (default: `checkpoint_dir` and its
        gfpgan/weights/)."""
        paths = {name: find_face_file(Path(checkpoint_dir), name, face_dirs) for name in (GFPGAN_FILE, PARSING_FILE)}
        missing = [name for name, p in paths.items() if p is None]
        if missing:
            where = ", ".join(str(d) for d in face_dirs_of(Path(checkpoint_dir), face_dirs))
            raise MissingCheckpoints(str(checkpoint_dir), [f"{m} (looked in {where})" for m in missing])
        dev = pick_device(device)
        gfpgan = load_network(GFPGANv1Clean, paths[GFPGAN_FILE], gfpgan_state, dev)
        parsenet = load_network(ParseNet, paths[PARSING_FILE], flat_state, dev)
        analyzer = analyzer or FaceAnalyzer.load(checkpoint_dir, dev, face_dirs)
        return cls(gfpgan, parsenet, analyzer, noise=noise, seed=seed,
                   files={"gfpgan": str(paths[GFPGAN_FILE]), "parsing": str(paths[PARSING_FILE])})

    def enhance(self, frames: np.ndarray, generator: torch.Generator | None = None,
                landmarks: list[list[np.ndarray]] | None = None) -> np.ndarray:
        """(N,H,W,3) uint8 RGB -> (N,2H,2W,3) uint8 RGB; frames without a face are Lanczos-upscaled only.

        generator: noise source for "random" noise (default: the enhancer's own, seeded at load); pass one
        seeded per video to make a video's output independent of earlier calls.
        landmarks: per frame the (5,2) points of its faces, used instead of detecting (the forced face path
        of benchmarks); None detects.
        """
        check_rgb(frames, batched=True)
        if landmarks is None:
            landmarks = self._detect_landmarks(frames)
        results = self.run(np.ascontiguousarray(frames[..., ::-1]), landmarks, generator)
        return np.stack([r.out_bgr[..., ::-1] for r in results])

    def _detect_landmarks(self, frames: np.ndarray | torch.Tensor) -> list[list[np.ndarray]]:
        if self.analyzer is None:
            raise ValueError("this Enhancer was built without a FaceAnalyzer; pass the faces' landmarks")
        if isinstance(frames, torch.Tensor):
            faces = self.analyzer.detect_batch_device(frames, DETECT_THRESHOLD, largest_first=False)
        else:
            faces = self.analyzer.detect_batch(frames, DETECT_THRESHOLD, largest_first=False)
        return [usable_landmarks(fs) for fs in faces]

    @torch.no_grad()
    def enhance_device(self, frames: torch.Tensor, generator: torch.Generator | None = None,
                       landmarks: list[list[np.ndarray]] | None = None) -> torch.Tensor:
        """`enhance` on the device: (N,3,H,W) 0..255 RGB float tensors -> (N,3,2H,2W), on the same device.

        Detection (RetinaFace), alignment, GFPGAN, ParseNet, masks and the blend stay on the device; only the
        face candidates (a few numbers per frame) and the 5-point similarity fits touch the host.
        """
        if landmarks is None:
            landmarks = self._detect_landmarks(frames)
        owners, affines, inverses = [], [], []
        for n, lms in enumerate(landmarks):
            for lm in lms:
                try:
                    affine = estimate_affine(lm)
                except ValueError as e:
                    log.warning("face skipped: %s", e)
                    continue
                owners.append(n)
                affines.append(affine)
                inverses.append(inverse_affine(affine, UPSCALE))
        if not owners:
            return paste_device.paste_faces(frames, [], frames[:0], np.zeros((0, 2, 3)), frames[:0], UPSCALE)
        crops = paste_device.warp_faces(frames, owners, np.stack(affines))     # K x 3 x 512 x 512, RGB
        restored = self.restore_device(crops, generator)
        masks = paste_device.parse_masks(self.parse_device(restored))
        return paste_device.paste_faces(frames, owners, restored, np.stack(inverses), masks, UPSCALE)

    @torch.no_grad()
    def restore_device(self, crops: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(K,3,512,512) aligned RGB 0..255 crops -> restored, rounded to 0..255 values, on their device."""
        p = next(self.gfpgan.parameters())
        gen = generator if generator is not None else self.generator
        out = []
        for chunk in crops.split(self.max_faces):
            noise = self.gfpgan.draw_noise(len(chunk), gen) if self.noise == "random" else None
            try:
                y = self.gfpgan(((chunk / 255.0 - 0.5) / 0.5).to(p.device, p.dtype), noise)
                out.append(torch.round((y.float().clamp(-1, 1) + 1) / 2 * 255.0).to(crops.device))
            except RuntimeError as e:  # the reference keeps the unrestored crop when GFPGAN fails
                log.warning("GFPGAN failed on %d faces (%s); keeping the aligned crops", len(chunk), e)
                out.append(chunk.clone())
        return torch.cat(out)

    @torch.no_grad()
    def parse_device(self, faces: torch.Tensor) -> torch.Tensor:
        """(K,3,512,512) RGB 0..255 faces -> (K,512,512) ParseNet labels, on their device."""
        p = next(self.parsenet.parameters())
        return torch.cat([self.parsenet(((chunk / 255.0 - 0.5) / 0.5).to(p.device, p.dtype)).argmax(dim=1)
                          for chunk in faces.split(self.max_faces)])

    def run(self, frames_bgr: np.ndarray, landmarks: list[list[np.ndarray]],
            generator: torch.Generator | None = None) -> list[FrameResult]:
        """Align, restore (batched), parse (batched) and paste the given faces of each BGR frame."""
        results = [FrameResult(np.empty(0, np.uint8)) for _ in frames_bgr]
        owners = []
        for n, (frame, lms) in enumerate(zip(frames_bgr, landmarks, strict=True)):
            for lm in lms:
                try:
                    affine = estimate_affine(lm)
                except ValueError as e:
                    log.warning("face skipped: %s", e)
                    continue
                r = results[n]
                r.landmarks5.append(lm)
                r.affines.append(affine)
                r.inverses.append(inverse_affine(affine, UPSCALE))
                r.crops.append(warp_face(frame, affine))
                owners.append(n)
        if owners:
            crops = np.stack([c for r in results for c in r.crops])
            restored = self.restore(crops, generator)
            labels = self.parse(restored)
            for n, face, lab in zip(owners, restored, labels, strict=True):
                results[n].restored.append(face)
                results[n].labels.append(lab)
        for frame, r in zip(frames_bgr, results, strict=True):
            masks = [parse_mask(lab) for lab in r.labels]
            r.out_bgr = paste_faces(frame, r.restored, r.inverses, masks, UPSCALE)
        return results

    @torch.no_grad()
    def restore(self, crops_bgr: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        """(K,512,512,3) aligned BGR crops -> restored BGR uint8, `max_faces` per forward."""
        p = next(self.gfpgan.parameters())
        gen = generator if generator is not None else self.generator
        out = []
        for start in range(0, len(crops_bgr), self.max_faces):
            chunk = crops_bgr[start:start + self.max_faces]
            noise = self.gfpgan.draw_noise(len(chunk), gen) if self.noise == "random" else None
            try:
                out.append(to_bgr_uint8(self.gfpgan(to_input(chunk, p.device, p.dtype), noise)))
            except RuntimeError as e:  # the reference keeps the unrestored crop when GFPGAN fails
                log.warning("GFPGAN failed on %d faces (%s); keeping the aligned crops", len(chunk), e)
                out.append(chunk.copy())
        return np.concatenate(out)

    @torch.no_grad()
    def parse(self, faces_bgr: np.ndarray) -> np.ndarray:
        """(K,512,512,3) restored BGR faces -> (K,512,512) ParseNet labels (argmax, first maximum)."""
        p = next(self.parsenet.parameters())
        labels = []
        for start in range(0, len(faces_bgr), self.max_faces):
            logits = self.parsenet(parse_input(faces_bgr[start:start + self.max_faces], p.device, p.dtype))
            labels.append(logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
        return np.concatenate(labels)
