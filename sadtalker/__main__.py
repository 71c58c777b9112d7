"""Command line: turn a portrait photo and a speech file into a talking-head MP4.

    python -m sadtalker generate --image face.jpg --audio speech.wav --out talk.mp4 [options]
    python -m sadtalker check [--checkpoint-dir D] [--size 256 512]

Exit status: 0 done, 1 unexpected failure, 2 bad arguments, 3 bad input (image, audio, no face),
4 checkpoints missing or unreadable, 5 encoding failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from .errors import CheckpointError, EncodeError, InvalidAudio, InvalidImage, NoFaceDetected, SadTalkerError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_CHECKPOINTS, EXIT_ENCODE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
STAGE_LABELS = {"preprocess": "face", "audio_to_coeff": "motion", "render": "render", "enhance": "enhance",
                "encode": "encode"}


class StageBars:
    """One tqdm bar per pipeline stage, opened when the stage first reports."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            unit = "frame" if stage in ("render", "enhance") else "step"
            self.bar = tqdm(total=total, desc=f"{STAGE_LABELS.get(stage, stage):>7}", unit=unit, leave=True,
                            file=sys.stderr, dynamic_ncols=True)
        assert self.bar is not None
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def build_parser() -> argparse.ArgumentParser:
    from .crop import MODES
    from .pipeline import ENHANCERS, POSTPROCESS, SIZES

    parser = argparse.ArgumentParser(prog="python -m sadtalker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="photo + speech -> MP4")
    gen.add_argument("--image", type=Path, required=True, help="portrait photo (JPEG, PNG, WebP, ...)")
    gen.add_argument("--audio", type=Path, required=True, help="speech (WAV, MP3, M4A, anything ffmpeg reads)")
    gen.add_argument("--out", type=Path, required=True, help="output .mp4 path")
    gen.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    gen.add_argument("--preprocess", choices=MODES, default="crop")
    gen.add_argument("--still", action="store_true", help="keep the photo's head pose (less motion)")
    gen.add_argument("--enhancer", choices=ENHANCERS, default="none")
    gen.add_argument("--size", type=int, choices=SIZES, default=256)
    gen.add_argument("--pose-style", type=int, default=0, help="head-motion style 0..45")
    gen.add_argument("--expression-scale", type=float, default=1.0, help="0..3")
    gen.add_argument("--ref-eyeblink", type=Path, help="video whose eye blinks are copied")
    gen.add_argument("--ref-pose", type=Path, help="video whose head motion is added")
    gen.add_argument("--seed", type=int, help="makes blinks and head motion reproducible")
    gen.add_argument("--no-blink", action="store_true", help="no generated eye blinks")
    gen.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    gen.add_argument("--precision", choices=("fp32", "tf32", "bf16", "fp16"), default="fp32",
                     help="numeric mode of the renderer and face networks (docs/performance.md)")
    gen.add_argument("--half", action="store_const", const="fp16", dest="precision", help="= --precision fp16")
    gen.add_argument("--batch-size", type=int, default=None, help="frames per render call (default: 2 on the "
                     "CPU, from free memory on a GPU)")
    gen.add_argument("--postprocess", choices=POSTPROCESS, default="auto",
                     help="resize/paste-back/enhancer on the device, or the numpy reference (auto: device on CUDA)")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    check = sub.add_parser("check", help="list missing checkpoint files")
    check.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    check.add_argument("--size", type=int, nargs="+", choices=SIZES, default=[256])
    return parser


def run_generate(args: argparse.Namespace) -> int:
    from .pipeline import GenerateOptions, Pipeline

    options = GenerateOptions(
        preprocess=args.preprocess, still=args.still, enhancer=args.enhancer, size=args.size,
        pose_style=args.pose_style, expression_scale=args.expression_scale, batch_size=args.batch_size,
        ref_eyeblink=args.ref_eyeblink, ref_pose=args.ref_pose, seed=args.seed, use_blink=not args.no_blink)
    options.validate()
    bars = StageBars(enabled=not args.quiet)
    try:
        pipeline = Pipeline.load(args.checkpoint_dir, device=args.device, precision=args.precision,
                                 sizes=(args.size,), enhancer=args.enhancer == "gfpgan",
                                 postprocess=args.postprocess)
        result = pipeline.generate(args.image, args.audio, args.out, options, progress=bars)
    finally:
        bars.close()
    print(f"{result.video_path}: {result.width}x{result.height}, {result.frames} frames, "
          f"{result.duration_s:.2f} s, face detector {result.face_detector}, seed {result.seed}")
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    from .pipeline import missing_checkpoints

    missing = missing_checkpoints(args.checkpoint_dir, tuple(args.size))
    for entry in missing:
        print(f"missing: {args.checkpoint_dir / entry}")
    if not missing:
        print(f"{args.checkpoint_dir}: all checkpoint files present")
    return EXIT_CHECKPOINTS if missing else EXIT_OK


def exit_code(error: SadTalkerError) -> int:
    if isinstance(error, (InvalidImage, InvalidAudio, NoFaceDetected)):
        return EXIT_INPUT
    if isinstance(error, CheckpointError):
        return EXIT_CHECKPOINTS
    if isinstance(error, EncodeError):
        return EXIT_ENCODE
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_generate(args) if args.command == "generate" else run_check(args)
    except SadTalkerError as e:
        print(f"sadtalker: error [{e.code}]: {e}", file=sys.stderr)
        return exit_code(e)
    except ValueError as e:
        print(f"sadtalker: error [invalid_option]: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sadtalker: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
