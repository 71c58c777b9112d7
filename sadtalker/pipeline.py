"""Portrait photo + speech -> lip-synced MP4: the entry point the service and the command line use.

`Pipeline.load` loads every model once; `Pipeline.generate` runs six named stages, all in memory:
face (crop + 3DMM) -> audio features -> coefficients -> render -> enhance -> encode. Render, enhance and
encode are streamed batch by batch into one ffmpeg process, so memory does not grow with the clip length.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from . import imageops
from .crop import MODES, output_size
from .encode import FPS, VideoEncoder
from .errors import Cancelled, InvalidAudio, MissingCheckpoints
from .pasteback import paste_frames, paste_frames_device
from .precision import DEFAULT_PRECISION, apply_backend_flags, cast_network, check_precision, storage_dtype
from .preprocess import (
    SourceFace,
    faces_for_crop,
    landmarks_in_crop,
    largest_face,
    prepare_source,
    read_image,
)
from .reference_video import reference_coeffs, tile_to
from .stages import DEFAULT_DEPTH, Stages
from .tuning import auto_batch_size, estimated_frame_bytes, measure_frame_bytes, tune_generator

log = logging.getLogger(__name__)

SIZES = (256, 512)
ENHANCERS = ("none", "gfpgan")
STAGES = ("preprocess", "audio_to_coeff", "render", "enhance", "encode")
NUM_POSE_STYLES = 46
MAX_EXPRESSION_SCALE = 3.0
MAX_BATCH_SIZE = 64
# resize/paste-back/enhancer batched on the pipeline's device, or the numpy/OpenCV reference; "auto": the device
# path on CUDA, the reference on the CPU (where it is the faster of the two, docs/performance.md)
POSTPROCESS = ("auto", "device", "cpu")
MAPPING_FILES = ("mapping_00229-model.pth.tar", "mapping_00109-model.pth.tar")
DOWNLOAD_HINT = "download the official files with scripts/download_checkpoints.sh"

ProgressFn = Callable[[str, int, int], None]   # (stage, done, total)


@dataclass(frozen=True)
class GenerateOptions:
    preprocess: str = "crop"          # crop | extcrop | resize | full | extfull
    still: bool = False
    enhancer: str = "none"            # none | gfpgan
    size: int = 256                   # 256 | 512
    pose_style: int = 0               # 0..45
    expression_scale: float = 1.0     # 0..3
    batch_size: int | None = None     # None: 2 on the CPU, from free memory on a GPU (tuning.py)
    ref_eyeblink: Path | None = None  # video file
    ref_pose: Path | None = None      # video file
    seed: int | None = None           # None -> random, reported in the result
    use_blink: bool = True

    def validate(self) -> None:
        """ValueError naming the first bad option and its valid values."""
        checks = [
            (self.preprocess in MODES, f"preprocess must be one of {', '.join(MODES)}"),
            (self.enhancer in ENHANCERS, f"enhancer must be one of {', '.join(ENHANCERS)}"),
            (self.size in SIZES, f"size must be one of {', '.join(map(str, SIZES))}"),
            (0 <= self.pose_style < NUM_POSE_STYLES, f"pose_style must be in 0..{NUM_POSE_STYLES - 1}"),
            (0 <= self.expression_scale <= MAX_EXPRESSION_SCALE,
             f"expression_scale must be in 0..{MAX_EXPRESSION_SCALE:g}"),
            (self.batch_size is None or 1 <= self.batch_size <= MAX_BATCH_SIZE,
             f"batch_size must be in 1..{MAX_BATCH_SIZE}"),
            (self.seed is None or 0 <= self.seed < 2**63, "seed must be a non-negative integer"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class FaceInfo:
    box: tuple
    score: float
    detector: str
    image_size: tuple[int, int]
    faces: int  # faces found in the photo; the largest is the one animated


@dataclass(frozen=True)
class GenerateResult:
    video_path: Path
    duration_s: float
    frames: int
    width: int
    height: int
    face_detector: str
    seed: int
    stages: dict = field(default_factory=dict)   # name -> frames, seconds, fps, busy_share, ran (Stages.report)


def missing_checkpoints(checkpoint_dir: str | Path, sizes: tuple[int, ...] = (256,)) -> list[str]:
    """Official files absent from `checkpoint_dir` for `sizes` (both mapping files always); [] when ready."""
    root = Path(checkpoint_dir)
    names = [f"SadTalker_V0.0.2_{size}.safetensors" for size in sizes] + list(MAPPING_FILES)
    return [f"{name} ({DOWNLOAD_HINT})" for name in names if not (root / name).is_file()]


class _Run:
    """Progress and cancellation of one generate() call."""

    def __init__(self, progress: ProgressFn | None, should_cancel: Callable[[], bool] | None):
        self._progress = progress
        self.should_cancel = should_cancel or (lambda: False)

    def report(self, stage: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(stage, done, total)

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise Cancelled("generation canceled")


class Pipeline:
    """Every model loaded once on one device; `generate` may be called many times (not concurrently)."""

    def __init__(self, checkpoint_dir: Path, models: dict, analyzer: Any, enhancer: Any,
                 enhancer_missing: list[str], device: str, precision: str = DEFAULT_PRECISION,
                 stage_depth: int = DEFAULT_DEPTH, *, postprocess: str = "auto", force_face: bool = False):
        self.checkpoint_dir = checkpoint_dir
        self.models = models               # size -> SadTalkerModel
        self.analyzer = analyzer           # face.FaceAnalyzer
        self.enhancer = enhancer           # face.Enhancer or None
        self._enhancer_missing = enhancer_missing
        self.device = device
        self.precision = precision         # precision.PRECISIONS
        self.stage_depth = stage_depth     # batches waiting between two overlapped stages
        self.frame_bytes: dict[int, int] = {}   # size -> GPU bytes per rendered frame, measured at warm-up
        if postprocess not in POSTPROCESS:
            raise ValueError(f"postprocess must be one of {', '.join(POSTPROCESS)}, got {postprocess!r}")
        if postprocess == "auto":
            postprocess = "device" if str(device).startswith("cuda") else "cpu"
        self.postprocess = postprocess     # "device" | "cpu" (the numpy/OpenCV reference path)
        self.force_face = force_face       # benchmarks: the enhancer uses the photo's face instead of detecting

    @classmethod
    def load(cls, checkpoint_dir: str | Path, *, device: str | None = None, precision: str = DEFAULT_PRECISION,
             half: bool = False, sizes: tuple[int, ...] = (256,), enhancer: bool = True,
             face_dirs: Sequence[Path] | None = None, compile: bool = False, stage_depth: int = DEFAULT_DEPTH,
             postprocess: str = "auto", force_face: bool = False) -> Pipeline:
        """Load the renderer/audio/3DMM models for `sizes`, the face analyzer and (if present) GFPGAN. Face
        files are looked for in `face_dirs` (default: `checkpoint_dir` and its `gfpgan/weights/`).

        precision: fp32 | tf32 | bf16 | fp16 (precision.py), set explicitly here; `half` is the older spelling
        of fp16. compile: torch.compile the decoder and hourglass (tuning.py). postprocess: "device" runs
        resize, paste-back and the enhancer batched on `device`; "cpu" the numpy/OpenCV reference path; "auto"
        the first on CUDA, the second on the CPU. force_face: the enhancer takes the photo's known face in every
        frame instead of detecting one (benchmarks on stand-in weights, whose noise frames show no face).
        """
        if postprocess not in POSTPROCESS:
            raise ValueError(f"postprocess must be one of {', '.join(POSTPROCESS)}, got {postprocess!r}")
        from .checkpoints import load_model
        from .face import Enhancer, FaceAnalyzer

        checkpoint_dir = Path(checkpoint_dir)
        bad_sizes = [size for size in sizes if size not in SIZES]
        if bad_sizes or not sizes:
            raise ValueError(f"sizes must be among {', '.join(map(str, SIZES))}, got {tuple(sizes)}")
        if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use 'cpu'")
        missing = missing_checkpoints(checkpoint_dir, tuple(sizes))
        if missing:
            raise MissingCheckpoints(str(checkpoint_dir), missing)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        precision = check_precision("fp16" if half else precision)
        apply_backend_flags(precision, device)
        dtype = storage_dtype(precision)
        models = {size: load_model(checkpoint_dir, size, device=device, dtype=dtype) for size in sizes}
        for model in models.values():
            tune_generator(model.generator, device, dtype, compile)
        analyzer = FaceAnalyzer.load(checkpoint_dir, device=device, face_dirs=face_dirs)
        if analyzer.detector is not None:
            cast_network(analyzer.detector, precision)   # FAN landmarks stay fp32 (an island)
        restorer, enhancer_missing = None, []
        if enhancer:
            try:
                restorer = Enhancer.load(checkpoint_dir, device=device, analyzer=analyzer, face_dirs=face_dirs)
                cast_network(restorer.gfpgan, precision)
                cast_network(restorer.parsenet, precision)
            except MissingCheckpoints as e:
                enhancer_missing = e.missing
                log.warning("face enhancer unavailable: %s", e)
        log.info("pipeline ready on %s (%s): sizes %s, face detector %s, enhancer %s", device, precision, sizes,
                 analyzer.backend, "gfpgan" if restorer else "none")
        return cls(checkpoint_dir, models, analyzer, restorer, enhancer_missing, str(device), precision,
                   stage_depth, postprocess=postprocess, force_face=force_face)

    def warm_up(self) -> None:
        """Load both mapping nets and run the face detector and every renderer once on a blank image, so the
        first job does not pay for lazy loading and kernel selection."""
        from .animate import render_frames

        self.analyzer.detect(np.full((256, 256, 3), 128, np.uint8))
        for size, model in self.models.items():
            model.mapping("full")
            image = np.full((size, size, 3), 128, np.uint8)
            render_two = partial(_drain, render_frames, model, image, np.zeros(73, np.float32),
                                 np.zeros((2, 70), np.float32), batch_size=2)
            render_two()
            measured = measure_frame_bytes(self.device, render_two)
            if measured is not None:
                self.frame_bytes[size] = measured

    def find_face(self, image_path: str | Path) -> FaceInfo:
        """The face generate() would animate. InvalidImage, NoFaceDetected."""
        rgb = read_image(Path(image_path))
        faces = faces_for_crop(self.analyzer, rgb)  # every face, to count them
        face = largest_face(faces)
        return FaceInfo(tuple(float(v) for v in face.box), float(face.score), self.analyzer.backend,
                        (rgb.shape[1], rgb.shape[0]), len(faces))

    def generate(self, image_path: str | Path, audio_path: str | Path, out_path: str | Path,
                 options: GenerateOptions = GenerateOptions(), progress: ProgressFn | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> GenerateResult:
        """Write the talking-head MP4 to `out_path`. InvalidImage, InvalidAudio, NoFaceDetected, Cancelled,
        EncodeError, MissingCheckpoints (size or enhancer not loaded)."""
        options.validate()
        model, enhancer = self._model_for(options.size), self._enhancer_for(options.enhancer)
        run = _Run(progress, should_cancel)
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        source = self._stage_face(Path(image_path), model, options, run)
        mels = self._stage_audio_features(Path(audio_path), run)
        coeffs = self._stage_coefficients(model, source, mels, options, seed, run)
        known_face = self._known_face(source, options, Path(image_path)) if self.force_face and enhancer else None
        stages = self._frame_stages(model, source, coeffs, options, enhancer, run, known_face=known_face)
        width, height = self._stage_encode(stages, source, options, len(coeffs), Path(audio_path),
                                           Path(out_path), run)
        return GenerateResult(Path(out_path), len(coeffs) / FPS, len(coeffs), width, height,
                              self.analyzer.backend, seed, stages.report())

    # -- stages -------------------------------------------------------------------------------------

    def _stage_face(self, image_path: Path, model, options: GenerateOptions, run: _Run) -> SourceFace:
        run.report("preprocess", 0, 1)
        rgb = read_image(image_path)
        source = prepare_source(self.analyzer, model.face3d, rgb, options.preprocess, options.size)
        run.report("preprocess", 1, 1)
        run.check_cancel()
        return source

    def _stage_audio_features(self, audio_path: Path, run: _Run) -> np.ndarray:
        from .audio import audio_features, load_audio

        run.report("audio_to_coeff", 0, 1)
        wav = load_audio(audio_path)
        mels = audio_features(wav)   # T x 80 x 16
        if len(mels) == 0:
            raise InvalidAudio(f"{audio_path.name} is shorter than one video frame (40 ms)")
        return mels

    def _stage_coefficients(self, model, source: SourceFace, mels: np.ndarray, options: GenerateOptions,
                            seed: int, run: _Run) -> np.ndarray:
        from .coeffs import audio_to_coefficients, blink_ratio, seeded_pose_noise

        num_frames = len(mels)
        ref_expression = self._reference(model, options.ref_eyeblink, options, num_frames, slice(0, 64))
        ref_pose = self._reference(model, options.ref_pose, options, num_frames, slice(64, 70))
        if options.use_blink and ref_expression is None:
            blink = blink_ratio(num_frames, random.Random(seed))
        else:   # a reference blink video brings its own eyelids (§8.1)
            blink = np.zeros(num_frames, np.float32)
        coeffs = audio_to_coefficients(
            model.audio2exp, model.audio2pose, mels, source.coeff, pose_style=options.pose_style, blink=blink,
            noise=seeded_pose_noise(seed, model.device), ref_expression=ref_expression, ref_pose=ref_pose)
        run.report("audio_to_coeff", 1, 1)
        run.check_cancel()
        return coeffs   # T x 70

    def _reference(self, model, video: Path | None, options: GenerateOptions, num_frames: int,
                   columns: slice) -> np.ndarray | None:
        if video is None:
            return None
        seq = reference_coeffs(self.analyzer, model.face3d, Path(video), mode=options.preprocess,
                               size=options.size, max_frames=num_frames)
        return tile_to(seq[:, columns], num_frames)

    def _frame_stages(self, model, source: SourceFace, coeffs: np.ndarray, options: GenerateOptions, enhancer,
                      run: _Run, frames: range | None = None, known_face: np.ndarray | None = None) -> Stages:
        """render -> postprocess (resize to the output size §8.4, paste back in full modes) -> enhance (GFPGAN,
        2x), each in its own thread with bounded queues between them (see stages.py); nothing runs until
        the caller drains the result. Deviation: the reference enhances the re-read lossy video instead.
        On the device path frames stay on the device until the last of these stages brings them back, once."""
        total = len(frames) if frames is not None else len(coeffs)
        run.report("render", 0, total)
        to_host = self.postprocess == "device" and enhancer is None
        transforms = [("postprocess", lambda batches: _final_frames(
            batches, output_size(options.size, source.info_size), source, to_host=to_host))]
        if enhancer is not None:
            run.report("enhance", 0, total)
            transforms.append(("enhance", lambda batches: _enhanced_frames(batches, enhancer, total, run,
                                                                            known_face)))
        return Stages("render", lambda: self._render_batches(model, source, coeffs, options, run,
                                                              report=enhancer is None, frames=frames),
                      transforms, depth=self.stage_depth, device=self.device)

    def _render_batches(self, model, source: SourceFace, coeffs: np.ndarray, options: GenerateOptions,
                        run: _Run, report: bool, frames: range | None = None) -> Iterator[np.ndarray]:
        from .animate import render_frames

        return render_frames(
            model, source.image, source.coeff, coeffs, preprocess=options.preprocess, still=options.still,
            expression_scale=options.expression_scale, batch_size=self._batch_size(model, options),
            on_progress=(lambda done, n: run.report("render", done, n)) if report else None,
            should_cancel=run.should_cancel, frames=frames, as_tensor=self.postprocess == "device")

    def _stage_encode(self, stages: Stages, source: SourceFace, options: GenerateOptions,
                      total: int, audio_path: Path | None, out_path: Path, run: _Run) -> tuple[int, int]:
        width, height = self._frame_size(source, options)
        with stages, VideoEncoder(out_path, audio_path, width, height, total) as encoder:
            stages.drain("encode", encoder.write)
            run.report("encode", 0, 1)
            encoder.close()
        run.report("encode", 1, 1)
        return encoder.width, encoder.height

    # -- helpers ------------------------------------------------------------------------------------

    def _frame_size(self, source: SourceFace, options: GenerateOptions) -> tuple[int, int]:
        """(width, height) of the frames reaching the encoder."""
        width, height = (source.paste.size if source.paste is not None
                         else output_size(options.size, source.info_size))
        scale = 2 if options.enhancer == "gfpgan" else 1   # GFPGAN restores at 2x
        return width * scale, height * scale

    def _known_face(self, source: SourceFace, options: GenerateOptions, image_path: Path) -> np.ndarray:
        """(5,2) points of the photo's face in the frames reaching the enhancer (the forced face path)."""
        if source.face is None or source.face.landmarks5 is None:
            raise ValueError("force_face needs the photo's 5 face points; the detector gave none")
        points = np.asarray(source.face.landmarks5, np.float64)
        if source.paste is not None:   # full modes: the frames are the photo
            return points.astype(np.float32)
        height, width = read_image(image_path).shape[:2]
        in_crop = landmarks_in_crop(points, source.box, options.preprocess, (width, height), options.size)
        out_w, out_h = output_size(options.size, source.info_size)
        return (in_crop * [out_w / options.size, out_h / options.size]).astype(np.float32)

    def _batch_size(self, model, options: GenerateOptions) -> int:
        if options.batch_size is not None:
            return options.batch_size
        frame_bytes = self.frame_bytes.get(model.size) or estimated_frame_bytes(model.size, model.dtype)
        return auto_batch_size(self.device, frame_bytes)

    def _model_for(self, size: int):
        if size not in self.models:
            raise MissingCheckpoints(str(self.checkpoint_dir),
                                     [f"SadTalker_V0.0.2_{size}.safetensors (not loaded by this pipeline)"])
        return self.models[size]

    def _enhancer_for(self, name: str):
        if name == "none":
            return None
        if self.enhancer is None:
            missing = self._enhancer_missing or ["GFPGANv1.4.pth (enhancer not loaded by this pipeline)"]
            raise MissingCheckpoints(str(self.checkpoint_dir), missing)
        return self.enhancer


def _drain(make: Callable[..., Iterator[Any]], *args: Any, **kwargs: Any) -> None:
    for _ in make(*args, **kwargs):
        pass


def _final_frames(batches: Iterator, size: tuple[int, int], source: SourceFace, to_host: bool = True) -> Iterator:
    """Each rendered batch resized to the output size (§8.4) and pasted back in full modes.

    numpy batches (the reference path) give numpy batches; device tensors (n,3,S,S) are processed on their
    device and leave it here as uint8 numpy when `to_host`, else stay there for the enhancer.
    """
    photo = None
    for batch in batches:
        if isinstance(batch, np.ndarray):
            frames = np.stack([cv2.resize(frame, size) for frame in batch])   # bilinear, as the reference
            yield paste_frames(frames, source.paste) if source.paste is not None else frames
            continue
        frames = imageops.resize_bilinear(batch, size)
        if source.paste is not None:
            if photo is None:   # uploaded once per video
                photo = torch.from_numpy(source.paste.photo).to(batch.device).permute(2, 0, 1)[None].float()
            frames = paste_frames_device(frames, source.paste, photo)
        yield imageops.to_host_uint8(frames) if to_host else frames


def _enhanced_frames(frames: Iterator, enhancer, total: int, run: _Run,
                     known_face: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """GFPGAN on each batch; device tensors are enhanced on their device and leave it once, as uint8.

    known_face: (5,2) points used in every frame instead of detecting (the forced face path).
    """
    done = 0
    for batch in frames:
        run.check_cancel()
        landmarks = None if known_face is None else [[known_face] for _ in range(len(batch))]
        if isinstance(batch, np.ndarray):
            enhanced = enhancer.enhance(batch, landmarks=landmarks)
        else:
            enhanced = imageops.to_host_uint8(enhancer.enhance_device(batch, landmarks=landmarks))
        done += len(batch)
        run.report("enhance", done, total)
        yield enhanced


def generate(image_path: str | Path, audio_path: str | Path, out_path: str | Path,
             checkpoint_dir: str | Path = "checkpoints", **options: Any) -> GenerateResult:
    """One-shot helper: load a Pipeline for this job's size/enhancer and generate.

    `options`: GenerateOptions fields, plus `device`, `precision` and `half` for loading.
    """
    device, half = options.pop("device", None), options.pop("half", False)
    precision = options.pop("precision", DEFAULT_PRECISION)
    names = {f.name for f in fields(GenerateOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    opts = GenerateOptions(**options)
    opts.validate()
    pipeline = Pipeline.load(checkpoint_dir, device=device, precision=precision, half=half, sizes=(opts.size,),
                             enhancer=opts.enhancer == "gfpgan")
    return pipeline.generate(image_path, audio_path, out_path, opts)
