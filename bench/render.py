"""Frames per second of each model stage at 256 px, and peak memory, with stand-in weights.

    python bench/render.py [--device cpu|cuda] [--small] [--frames N] [--batch-size B] [--dtype float32|float16|bfloat16]

Stages: audio front end (waveform -> mel windows), coefficients (ExpNet + PoseVAE + smoothing),
keypoints (mapping net + transformation per frame) and generator (warp + SPADE decode per frame,
source encoded once). Weights are stand-ins (official shapes unless --small), so the speed is that of
the real networks; the pictures are not. Peak memory: process RSS on CPU, torch's peak allocation on CUDA.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sadtalker import animate, audio, coeffs  # noqa: E402
from sadtalker.checkpoints import load_model  # noqa: E402
from sadtalker.standin import write_standins  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(args: argparse.Namespace) -> list[tuple[str, int, float, float]]:
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_standins(Path(tmp), ROOT.parent / "shared" / "reference" if args.reference is None
                              else Path(args.reference), small=args.small)
        model = load_model(ckpt, device=device, dtype=DTYPES[args.dtype])
        model.mapping("crop")  # mapping nets load lazily: load it while the files exist
    rng = np.random.default_rng(0)
    n = args.frames
    wav = (0.1 * np.sin(np.arange(n * 640) * 2 * np.pi * 220 / audio.SAMPLE_RATE)).astype(np.float32)
    wav += rng.normal(0, 0.01, wav.shape).astype(np.float32)
    mels, dt = _timed(device, lambda: audio.audio_features(wav))
    rows.append(("audio front end", len(mels), dt, _peak_mb(device)))

    first = rng.normal(0, 0.3, 73).astype(np.float32)
    noise = coeffs.seeded_pose_noise(0, device)
    with torch.inference_mode():
        coeff, dt = _timed(device, lambda: coeffs.audio_to_coefficients(
            model.audio2exp, model.audio2pose, mels, first, noise=noise))
    rows.append(("coefficients", len(coeff), dt, _peak_mb(device)))

    image = rng.integers(0, 256, (model.size, model.size, 3), dtype=np.uint8)
    target = animate.target_coefficients(coeff, first, "crop")
    with torch.inference_mode():
        source = animate.encode_source(model, image, first)
        windows = animate.semantic_windows(target)
        _, dt = _timed(device, lambda: animate.driving_keypoints(model, source.kp_canonical, windows))
        rows.append(("keypoints", len(windows), dt, _peak_mb(device)))
        animate.render_float_frames(model, source, windows[:1])  # warm-up (kernel choice, allocator)

        def generate() -> None:
            for start in range(0, len(windows), args.batch_size):
                animate.quantize(animate.render_float_frames(model, source, windows[start:start + args.batch_size])[0])

        _, dt = _timed(device, generate)
        rows.append((f"generator (batch {args.batch_size})", len(windows), dt, _peak_mb(device)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="narrow stand-in networks (fast, not representative)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="renderer precision")
    parser.add_argument("--reference", help="reference folder holding sadtalker/detweights.py (default ../shared/reference)")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rows = run(args)
    what = "small stand-in" if args.small else "full-size stand-in"
    print(f"device {args.device}, {what} weights, 256 px, {args.dtype}, {torch.get_num_threads()} CPU threads")
    print(f"{'stage':<24} {'frames':>7} {'seconds':>9} {'frames/s':>10} {'peak MB':>9}")
    for name, frames, seconds, peak in rows:
        print(f"{name:<24} {frames:>7} {seconds:>9.3f} {frames / seconds:>10.2f} {peak:>9.0f}")


if __name__ == "__main__":
    main()
