"""Per-stage wall time and frames per second of one generate() run, printed as a table.

    python bench/pipeline.py [--device cpu|cuda] [--small] [--seconds 4] [--enhancer none|gfpgan]
                             [--checkpoint-dir D] [--image I] [--audio A] [--preprocess crop] [--size 256]
                             [--postprocess auto|device|cpu] [--force-face]

Without --checkpoint-dir, stand-in checkpoints (official formats; `--small` for the narrow networks) are
written to a temporary folder from `../shared/reference` (set --reference-dir otherwise); stand-in face models
give no detections, so the dlib fallback finds the face and, with --enhancer gfpgan, stand-in GFPGAN/ParseNet
enhance it. Without --image/--audio: skimage's astronaut and espeak-ng speech looped to --seconds.
Render, enhance and encode are streamed batch by batch, so the render (or render+enhance) row includes
feeding the encoder and the encode row is only ffmpeg finishing the file.
Stand-in renderers draw noise, in which no detector finds a face, so GFPGAN would never run: --force-face makes
the enhancer use the photo's known face in every frame; the `ran:` line says on how many frames the paste-back
and GFPGAN really ran. --postprocess device|cpu picks the post-processing path (default auto: the device one on CUDA).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sadtalker.encode import ffmpeg_exe  # noqa: E402
from sadtalker.pipeline import STAGES, GenerateOptions, Pipeline  # noqa: E402

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
    """Wall time from the first report of each stage to the first report of the next one."""

    def __init__(self):
        self.started: dict[str, float] = {}
        self.frames: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.started.setdefault(stage, time.perf_counter())
        if stage in ("render", "enhance"):
            self.frames[stage] = total

    def rows(self, end: float) -> list[tuple[str, float, int | None]]:
        if "enhance" in self.started:   # rendered and enhanced batch by batch: one streamed row
            self.started["render+enhance"] = self.started.pop("render")
            self.frames["render+enhance"] = self.frames.pop("enhance")
            del self.started["enhance"]
        order = [s for s in STAGES if s != "enhance"]
        order.insert(order.index("render"), "render+enhance")
        stages = [s for s in order if s in self.started]
        ends = [self.started[s] for s in stages[1:]] + [end]
        return [(s, e - self.started[s], self.frames.get(s)) for s, e in zip(stages, ends, strict=True)]


def load_pipeline(args: argparse.Namespace, checkpoints: Path, work: Path) -> Pipeline:
    pipeline = Pipeline.load(checkpoints, device=args.device, sizes=(args.size,), enhancer=False,
                             half=args.half, postprocess=args.postprocess, force_face=args.force_face)
    if args.enhancer == "gfpgan":
        from sadtalker.face import Enhancer

        face_dir = checkpoints if args.checkpoint_dir else work / "face_models"
        pipeline.enhancer = Enhancer.load(face_dir, device=pipeline.device, analyzer=pipeline.analyzer)
    return pipeline


class RunCounter:
    """Counts what really ran in the post-processing stages: frames pasted back (full modes) and faces GFPGAN
    restored (either path), by wrapping those calls."""

    def __init__(self, pipeline: Pipeline):
        import sadtalker.pipeline as module

        self.pasted = self.faces = 0
        for name in ("paste_frames", "paste_frames_device"):
            setattr(module, name, self._counting(getattr(module, name), "pasted"))
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
    parser.add_argument("--device", default=None)
    parser.add_argument("--half", action="store_true")
    parser.add_argument("--small", action="store_true", help="narrow stand-in networks")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--enhancer", choices=("none", "gfpgan"), default="none")
    parser.add_argument("--preprocess", default="crop")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--checkpoint-dir", type=Path)
    parser.add_argument("--reference-dir", type=Path, default=ROOT.parent / "shared" / "reference")
    parser.add_argument("--image", type=Path)
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--postprocess", choices=("auto", "device", "cpu"), default="auto")
    parser.add_argument("--force-face", action="store_true",
                        help="the enhancer uses the photo's face in every frame instead of detecting")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        work = Path(tmp)
        image, audio = make_inputs(work, args.seconds)
        image, audio = args.image or image, args.audio or audio
        started = time.perf_counter()
        checkpoints = args.checkpoint_dir or make_checkpoints(work, args.reference_dir, args.small, args.size,
                                                              args.enhancer)
        pipeline = load_pipeline(args, checkpoints, work)
        loaded = time.perf_counter()
        counter = RunCounter(pipeline)
        clock = StageClock()
        options = GenerateOptions(preprocess=args.preprocess, size=args.size, enhancer=args.enhancer,
                                  batch_size=args.batch_size, seed=0)
        result = pipeline.generate(image, audio, work / "bench.mp4", options, progress=clock)
        end = time.perf_counter()

    print(f"device {pipeline.device}, {'small' if args.small else 'full-size'} networks"
          f"{'' if args.checkpoint_dir is None else ' from ' + str(args.checkpoint_dir)}, preprocess "
          f"{args.preprocess}, size {args.size}, batch {args.batch_size}, enhancer {args.enhancer}, "
          f"face detector {result.face_detector}, post-processing {pipeline.postprocess}")
    print(f"clip {result.duration_s:.2f} s = {result.frames} frames -> {result.width}x{result.height}; "
          f"load (incl. writing stand-ins) {loaded - started:.1f} s")
    print(f"{'stage':<16}{'wall s':>10}{'frames':>8}{'fps':>9}")
    for stage, seconds, frames in clock.rows(end):
        fps = f"{frames / seconds:9.2f}" if frames else f"{'':>9}"
        print(f"{stage:<16}{seconds:>10.2f}{frames or '':>8}{fps}")
    total = end - min(clock.started.values())
    print(f"{'total':<16}{total:>10.2f}{result.frames:>8}{result.frames / total:9.2f}")
    print(counter.summary(result.frames, args.preprocess, args.enhancer, args.force_face))
    return 0


if __name__ == "__main__":
    sys.exit(main())
