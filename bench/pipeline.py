"""Per-stage frames/s, busy share and peak memory of one generate() run, printed as a table (or one JSON object).

    python bench/pipeline.py [--device cpu|cuda|cuda:0,cuda:1] [--small] [--seconds 4] [--enhancer none|gfpgan]
                             [--precision fp32|tf32|bf16|fp16] [--batch-size N] [--compile] [--json]
                             [--checkpoint-dir D] [--image I] [--audio A] [--preprocess crop] [--size 256]
                             [--postprocess auto|device|cpu] [--force-face]

Without --checkpoint-dir, stand-in checkpoints (official formats; `--small` for the narrow networks) are
written to a temporary folder from `../shared/reference` (set --reference-dir otherwise); stand-in face models
give no detections, so the dlib fallback finds the face and, with --enhancer gfpgan, stand-in GFPGAN/ParseNet
enhance it. Without --image/--audio: skimage's astronaut and espeak-ng speech looped to --seconds.
Render, post-processing, enhancement and encoding overlap (sadtalker/stages.py): each row's seconds are the
time that stage was busy, its share is of the whole wall time, and the wall time is close to the busiest
stage rather than the sum. A device list renders the clip in segments, one per device (sadtalker/split.py).
--json prints {"device", "precision", "frames", "wall_s", "stages": {NAME: {"frames", "seconds", "fps",
"ran", "busy_share"}}, "peak_memory_mb", "memory": "gpu"|"rss", "batch_size"}.
Stand-in renderers draw noise, in which no detector finds a face, so GFPGAN would never run: --force-face makes
the enhancer use the photo's known face in every frame; the `ran:` line (and "ran" in the JSON) says on how
many frames the paste-back and GFPGAN really ran. --postprocess device|cpu picks the post-processing path
(default auto: the device one on CUDA).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sadtalker.encode import ffmpeg_exe  # noqa: E402
from sadtalker.pipeline import GenerateOptions, Pipeline  # noqa: E402
from sadtalker.precision import PRECISIONS  # noqa: E402
from sadtalker.split import MIN_SEGMENT_FRAMES  # noqa: E402

SPEECH_TEXT = "Hello there. This is a short benchmark of the talking head pipeline, spoken by a machine."


def make_inputs(work: Path, seconds: float) -> tuple[Path, Path]:
    import cv2
    from skimage import data

    image = work / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    speech, looped = work / "speech.wav", work / f"speech_{seconds:g}s.wav"
    subprocess.run(["espeak-ng", "-s", "160", "-w", str(speech), SPEECH_TEXT], check=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(speech), "-t", f"{seconds}",
                    str(looped)], check=True)
    return image, looped


def make_checkpoints(work: Path, reference_dir: Path, small: bool, size: int, enhancer: str) -> Path:
    from sadtalker.face.standin import write_face_standins
    from sadtalker.standin import write_standins

    out = write_standins(work / "checkpoints", reference_dir, small=small, sizes=(size,))
    if enhancer == "gfpgan":   # beside, not inside: the stand-in detector would find no face
        write_face_standins(work / "face_models" / "gfpgan" / "weights", reference_dir, small=small)
    return out


class StageClock:
    """Wall time of the stages before the overlapped ones (preprocess, audio_to_coeff)."""

    def __init__(self):
        self.started: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.started.setdefault(stage, time.perf_counter())

    def leading(self) -> dict[str, dict]:
        order = [s for s in ("preprocess", "audio_to_coeff", "render") if s in self.started]
        return {s: {"frames": 0, "seconds": round(self.started[n] - self.started[s], 4), "fps": 0.0, "ran": True}
                for s, n in zip(order, order[1:], strict=False)}


def load_pipeline(args: argparse.Namespace, checkpoints: Path, work: Path):
    devices = [d for d in (args.device or "").split(",") if d] or [None]
    options = {"sizes": (args.size,), "enhancer": False, "precision": args.precision, "compile": args.compile,
               "postprocess": args.postprocess, "force_face": args.force_face}
    if len(devices) > 1:
        from sadtalker.split import SplitPipeline

        pipeline = SplitPipeline.load(checkpoints, devices, min_segment_frames=args.min_segment_frames, **options)
        pipes = pipeline.pipelines
    else:
        pipeline = Pipeline.load(checkpoints, device=devices[0], **options)
        pipes = [pipeline]
    if args.enhancer == "gfpgan":
        from sadtalker.face import Enhancer
        from sadtalker.precision import cast_network

        face_dir = args.face_dir or (checkpoints if args.checkpoint_dir else work / "face_models")
        for pipe in pipes:
            pipe.enhancer = Enhancer.load(face_dir, device=pipe.device, analyzer=pipe.analyzer)
            cast_network(pipe.enhancer.gfpgan, args.precision)
            cast_network(pipe.enhancer.parsenet, args.precision)
    return pipeline, pipes


def peak_memory_mb(pipes: list) -> tuple[float, str]:
    """Peak GPU memory allocated (summed over the devices) on CUDA, else the process's peak RSS."""
    import resource

    import torch

    cuda = [torch.device(p.device) for p in pipes if str(p.device).startswith("cuda")]
    if cuda:
        return sum(torch.cuda.max_memory_allocated(d) for d in dict.fromkeys(cuda)) / 2**20, "gpu"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss"


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        work = Path(tmp)
        image, audio = make_inputs(work, args.seconds)
        image, audio = args.image or image, args.audio or audio
        checkpoints = args.checkpoint_dir or make_checkpoints(work, args.reference_dir, args.small, args.size,
                                                              args.enhancer)
        pipeline, pipes = load_pipeline(args, checkpoints, work)
        counter = RunCounter(pipes)
        clock = StageClock()
        options = GenerateOptions(preprocess=args.preprocess, size=args.size, enhancer=args.enhancer,
                                  batch_size=args.batch_size, seed=0)
        began = time.perf_counter()
        result = pipeline.generate(image, audio, work / "bench.mp4", options, progress=clock)
        wall = time.perf_counter() - began
    stages = {**clock.leading(), **result.stages}
    if "enhance" in stages:  # the stage ran, but GFPGAN only where a face was found
        stages["enhance"]["ran"] = counter.faces >= result.frames
    for row in stages.values():
        row["busy_share"] = round(row["seconds"] / wall, 3) if wall else 0.0
    memory, kind = peak_memory_mb(pipes)
    return {"device": pipeline.device, "precision": args.precision, "frames": result.frames,
            "wall_s": round(wall, 3), "stages": stages, "peak_memory_mb": round(memory, 1), "memory": kind,
            "batch_size": pipes[0]._batch_size(pipes[0].models[args.size], options),
            "size": f"{result.width}x{result.height}", "face_detector": result.face_detector,
            "networks": "small" if args.small else "full-size", "enhancer": args.enhancer,
            "postprocess": pipes[0].postprocess,
            "ran": counter.summary(result.frames, args.preprocess, args.enhancer, args.force_face)}


def print_table(report: dict) -> None:
    print(f"device {report['device']}, {report['networks']} networks, precision {report['precision']}, batch "
          f"{report['batch_size']}, enhancer {report['enhancer']}, face detector {report['face_detector']}, "
          f"post-processing {report['postprocess']}")
    print(f"clip {report['frames']} frames -> {report['size']}; peak memory {report['peak_memory_mb']:.0f} MB "
          f"({report['memory']})")
    print(f"{'stage':<16}{'busy s':>10}{'frames':>8}{'fps':>9}{'busy %':>8}{'ran':>5}")
    for name, row in report["stages"].items():
        fps = f"{row['fps']:9.2f}" if row["frames"] else f"{'':>9}"
        print(f"{name:<16}{row['seconds']:>10.2f}{row['frames'] or '':>8}{fps}{100 * row['busy_share']:>8.0f}"
              f"{'yes' if row['ran'] else 'NO':>5}")
    overlapped = [r["seconds"] for n, r in report["stages"].items() if n not in ("preprocess", "audio_to_coeff")]
    print(f"{'total (wall)':<16}{report['wall_s']:>10.2f}{report['frames']:>8}"
          f"{report['frames'] / report['wall_s']:9.2f}")
    print(f"overlapped stages: slowest {max(overlapped):.2f} s, serial sum {sum(overlapped):.2f} s")
    print(report["ran"])


class RunCounter:
    """Counts what really ran in the post-processing stages: frames pasted back (full modes) and faces GFPGAN
    restored (either path), by wrapping those calls."""

    def __init__(self, pipes: list[Pipeline]):
        import sadtalker.pipeline as module

        self.pasted = self.faces = 0
        for name in ("paste_frames", "paste_frames_device"):
            setattr(module, name, self._counting(getattr(module, name), "pasted"))
        for pipeline in pipes:
            if pipeline.enhancer is not None:
                for name in ("restore", "restore_device"):
                    setattr(pipeline.enhancer, name, self._counting(getattr(pipeline.enhancer, name), "faces"))

    def _counting(self, original, counter: str):
        def call(batch, *args, **kwargs):
            setattr(self, counter, getattr(self, counter) + len(batch))
            return original(batch, *args, **kwargs)
        return call

    def summary(self, frames: int, preprocess: str, enhancer: str, forced: bool) -> str:
        def share(count: int, what: str) -> str:
            return f"{count}/{frames} {what}" + ("" if count >= frames else " (NOT every frame)")

        paste = share(self.pasted, "frames") if preprocess in ("full", "extfull") else "not in this mode"
        gfpgan = (share(self.faces, "frames with a face") + (" (forced face)" if forced else "")
                  if enhancer == "gfpgan" else "off")
        return f"ran: render {frames}/{frames} frames, paste-back {paste}, GFPGAN {gfpgan}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:0, or a list cuda:0,cuda:1 (split)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--half", action="store_const", const="fp16", dest="precision", help="= --precision fp16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the decoder and hourglass")
    parser.add_argument("--small", action="store_true", help="narrow stand-in networks")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--enhancer", choices=("none", "gfpgan"), default="none")
    parser.add_argument("--preprocess", default="crop")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 2 on CPU, from free GPU memory")
    parser.add_argument("--min-segment-frames", type=int, default=MIN_SEGMENT_FRAMES)
    parser.add_argument("--checkpoint-dir", type=Path)
    parser.add_argument("--face-dir", type=Path, help="GFPGAN/ParseNet files (default: the checkpoint dir)")
    parser.add_argument("--reference-dir", type=Path, default=ROOT.parent / "shared" / "reference")
    parser.add_argument("--image", type=Path)
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--postprocess", choices=("auto", "device", "cpu"), default="auto")
    parser.add_argument("--force-face", action="store_true",
                        help="the enhancer uses the photo's face in every frame instead of detecting")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    report = measure(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
