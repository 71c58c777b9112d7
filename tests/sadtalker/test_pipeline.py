"""Pipeline end to end on the astronaut photo and espeak speech, with small stand-in checkpoints.

Rendering costs seconds per frame on CPU even with narrow stand-ins, so most runs use a 2-frame cut of
the speech; one slow test renders a few frames of a 20 s clip to check that memory stays flat.
"""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from sadtalker.crop import crop_box, output_size
from sadtalker.encode import count_frames, even_size, ffmpeg_exe, probe
from sadtalker.errors import Cancelled, InvalidAudio, InvalidImage, MissingCheckpoints, NoFaceDetected
from sadtalker.pipeline import STAGES, GenerateOptions, Pipeline, missing_checkpoints
from sadtalker.preprocess import detect_for_crop, read_image

TINY_FRAMES = 2   # one render batch


def cut_audio(src: Path, dst: Path, seconds: float, loops: int = 0) -> Path:
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(src), "-t", f"{seconds}", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


@pytest.fixture(scope="module")
def tiny_speech(media_dir, speech_wav) -> Path:
    """0.1 s of the espeak speech: 2 video frames."""
    return cut_audio(speech_wav, media_dir / "speech_2frames.wav", 0.1)


@pytest.fixture(scope="module")
def pipeline(small_checkpoints) -> Pipeline:
    return Pipeline.load(small_checkpoints, device="cpu", enhancer=False)


@pytest.fixture(scope="module")
def crop_run(pipeline, face_png, tiny_speech, tmp_path_factory):
    events = []
    out = tmp_path_factory.mktemp("crop") / "talk.mp4"
    result = pipeline.generate(face_png, tiny_speech, out, GenerateOptions(batch_size=2),
                               progress=lambda stage, done, total: events.append((stage, done, total)))
    return result, events


def expected_size(pipeline: Pipeline, image: Path, mode: str, scale: int = 1) -> tuple[int, int]:
    """Encoded (width, height): §8.4 output size (or the photo's), times the enhancer's scale, made even."""
    rgb = read_image(image)
    height, width = rgb.shape[:2]
    if mode in ("full", "extfull"):
        size = (width, height)
    elif mode == "resize":
        size = output_size(256, (width, height))
    else:
        lm = pipeline.analyzer.landmarks68(rgb, detect_for_crop(pipeline.analyzer, rgb))
        size = output_size(256, crop_box(lm, (width, height)).info_size)
    return even_size(size[0] * scale, size[1] * scale)


def assert_playable_mp4(path: Path, frames: int, size: tuple[int, int]) -> None:
    info = probe(path)
    assert (info.video_codec, info.pix_fmt, info.audio_codec, info.fps) == ("h264", "yuv420p", "aac", 25.0)
    assert (info.width, info.height) == size
    assert count_frames(path) == frames
    assert info.duration_s == pytest.approx(frames / 25, abs=0.03)


def test_crop_mode_writes_a_playable_lip_sync_video(crop_run, pipeline, face_png):
    result, _ = crop_run
    assert result.frames == TINY_FRAMES and result.duration_s == pytest.approx(TINY_FRAMES / 25)
    assert (result.width, result.height) == expected_size(pipeline, face_png, "crop")
    assert result.face_detector == pipeline.analyzer.backend
    assert isinstance(result.seed, int)
    assert_playable_mp4(result.video_path, TINY_FRAMES, (result.width, result.height))
    assert sorted(p.name for p in result.video_path.parent.iterdir()) == ["talk.mp4"]
    assert list(result.stages) == ["render", "postprocess", "encode"]   # overlapped stages, each ran
    assert all(row["frames"] == TINY_FRAMES and row["ran"] for row in result.stages.values())


def test_progress_reports_every_stage_in_order(crop_run):
    _, events = crop_run
    order = [STAGES.index(stage) for stage, _, _ in events]
    assert order == sorted(order)
    assert {stage for stage, _, _ in events} == {"preprocess", "audio_to_coeff", "render", "encode"}
    render = [done for stage, done, _ in events if stage == "render"]
    assert render == sorted(render) and render[-1] == TINY_FRAMES
    assert events[-1] == ("encode", 1, 1)


@pytest.mark.parametrize("mode", ["extcrop", "resize", "full", "extfull"])
def test_every_preprocess_mode_gives_the_right_video_size(pipeline, face_jpg, tiny_speech, tmp_path, mode):
    result = pipeline.generate(face_jpg, tiny_speech, tmp_path / f"{mode}.mp4",
                               GenerateOptions(preprocess=mode, seed=5, still=mode == "extfull"))
    size = expected_size(pipeline, face_jpg, mode)
    assert (result.width, result.height) == size
    assert_playable_mp4(result.video_path, TINY_FRAMES, size)
    if mode in ("full", "extfull"):   # pasted back: the photo far from the face is unchanged
        first = decode_first_frame(result.video_path, result.width, result.height)
        corner = (slice(440, 512), slice(0, 80))   # astronaut's lower-left corner
        assert np.abs(first[corner].astype(int) - read_image(face_jpg)[corner]).mean() < 6


def decode_first_frame(path: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def test_cancel_between_render_batches(pipeline, face_png, short_speech_wav, tmp_path):
    seen = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append((stage, done))

    def should_cancel() -> bool:
        return any(stage == "render" and done > 0 for stage, done in seen)

    with pytest.raises(Cancelled) as info:
        pipeline.generate(face_png, short_speech_wav, tmp_path / "x.mp4", GenerateOptions(batch_size=2),
                          progress=progress, should_cancel=should_cancel)
    assert info.value.code == "canceled"
    assert max(done for stage, done in seen if stage == "render") == 2   # stopped after the first batch
    assert list(tmp_path.iterdir()) == []


def test_photo_without_a_face(pipeline, noface_png, tiny_speech, tmp_path):
    with pytest.raises(NoFaceDetected) as info:
        pipeline.find_face(noface_png)
    assert info.value.code == "no_face_detected"
    with pytest.raises(NoFaceDetected):
        pipeline.generate(noface_png, tiny_speech, tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == []


def test_find_face_reports_the_largest_face(pipeline, face_png):
    face = pipeline.find_face(face_png)
    x1, y1, x2, y2 = face.box
    assert face.image_size == (512, 512) and face.detector == pipeline.analyzer.backend
    assert 150 < (x1 + x2) / 2 < 300 and 60 < (y1 + y2) / 2 < 220   # the astronaut's face


def test_bad_inputs_get_named_errors(pipeline, face_png, tiny_speech, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(InvalidAudio):
        pipeline.generate(face_png, text, tmp_path / "x.mp4")
    with pytest.raises(InvalidImage):
        pipeline.generate(text, tiny_speech, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="preprocess must be one of"):
        pipeline.generate(face_png, tiny_speech, tmp_path / "x.mp4", GenerateOptions(preprocess="zoom"))
    with pytest.raises(MissingCheckpoints, match="GFPGAN"):
        pipeline.generate(face_png, tiny_speech, tmp_path / "x.mp4", GenerateOptions(enhancer="gfpgan"))
    with pytest.raises(MissingCheckpoints, match="512"):
        pipeline.generate(face_png, tiny_speech, tmp_path / "x.mp4", GenerateOptions(size=512))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.wav"]


def test_seed_makes_blinks_and_pose_reproducible(pipeline, face_png, speech_wav):
    from sadtalker.audio import audio_features, load_audio
    from sadtalker.pipeline import _Run
    from sadtalker.preprocess import prepare_source

    model = pipeline.models[256]
    source = prepare_source(pipeline.analyzer, model.face3d, read_image(face_png), "crop", 256)
    mels = audio_features(load_audio(speech_wav))
    run = _Run(None, None)
    first, again, other = (pipeline._stage_coefficients(model, source, mels, GenerateOptions(), seed, run)
                           for seed in (11, 11, 12))
    assert first.shape == (len(mels), 70)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[:, 64:], other[:, 64:])


def test_missing_checkpoints_names_each_official_file(tmp_path, small_checkpoints):
    missing = missing_checkpoints(tmp_path, sizes=(256, 512))
    names = [entry.split(" ")[0] for entry in missing]
    assert names == ["SadTalker_V0.0.2_256.safetensors", "SadTalker_V0.0.2_512.safetensors",
                     "mapping_00229-model.pth.tar", "mapping_00109-model.pth.tar"]
    assert all("download" in entry for entry in missing)
    assert missing_checkpoints(small_checkpoints) == []
    assert [e.split(" ")[0] for e in missing_checkpoints(small_checkpoints, (256, 512))] == [
        "SadTalker_V0.0.2_512.safetensors"]
    with pytest.raises(MissingCheckpoints) as info:
        Pipeline.load(tmp_path)
    assert info.value.code == "models_unavailable"


@pytest.mark.slow
def test_memory_does_not_grow_with_the_clip_length(pipeline, face_png, speech_wav, tmp_path):
    """A 20 s clip (500 frames): traced Python memory after frame 4 (steady state: one batch in flight) and after
    frame 10 stays within two frames (keeping the frames would grow by six); the run is canceled after frame 10.
    (The whole clip would take minutes under tracemalloc.)"""
    long_speech = cut_audio(speech_wav, tmp_path / "long.wav", 20.0, loops=5)
    samples: dict[int, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "render" and done:
            assert total == 500
            samples[done] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        with pytest.raises(Cancelled):
            pipeline.generate(face_png, long_speech, tmp_path / "long.mp4", GenerateOptions(batch_size=2),
                              progress=progress, should_cancel=lambda: max(samples, default=0) >= 10)
    finally:
        tracemalloc.stop()
    frame_bytes = 256 * 256 * 3
    assert samples[10] - samples[4] < 2 * frame_bytes
    assert list(tmp_path.iterdir()) == [tmp_path / "long.wav"]


@pytest.mark.slow
def test_full_size_checkpoints_smoke(full_checkpoints, face_png, tiny_speech, tmp_path):
    full = Pipeline.load(full_checkpoints, device="cpu", enhancer=False)
    result = full.generate(face_png, tiny_speech, tmp_path / "full_size.mp4", GenerateOptions(seed=0))
    assert_playable_mp4(result.video_path, TINY_FRAMES, (result.width, result.height))


def test_gfpgan_enhancer_runs_on_the_frames_in_memory(pipeline, reference_dir, face_png, tiny_speech, tmp_path):
    """Stand-in GFPGAN + ParseNet (small) with the dlib analyzer that finds the real face."""
    from sadtalker.face import Enhancer
    from sadtalker.face.standin import write_face_standins

    face_dir = tmp_path / "face_models"
    write_face_standins(face_dir / "gfpgan" / "weights", reference_dir, small=True)
    enhancer = Enhancer.load(face_dir, device="cpu", analyzer=pipeline.analyzer)
    enhanced = Pipeline(pipeline.checkpoint_dir, pipeline.models, pipeline.analyzer, enhancer, [], "cpu")
    events = []
    result = enhanced.generate(face_png, tiny_speech, tmp_path / "enhanced.mp4",
                               GenerateOptions(enhancer="gfpgan", seed=2),
                               progress=lambda stage, done, total: events.append((stage, done, total)))
    assert (result.width, result.height) == expected_size(pipeline, face_png, "crop", scale=2)
    assert_playable_mp4(result.video_path, TINY_FRAMES, (result.width, result.height))
    order = [STAGES.index(stage) for stage, _, _ in events]
    assert order == sorted(order)
    assert ("enhance", TINY_FRAMES, TINY_FRAMES) in events


def test_warm_up_and_load_arguments(pipeline, small_checkpoints):
    pipeline.warm_up()   # loads the 73-channel mapping and runs the renderer once
    assert pipeline.device == "cpu"
    with pytest.raises(ValueError, match="sizes must be among"):
        Pipeline.load(small_checkpoints, sizes=(300,))
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16, fp16"):
        Pipeline.load(small_checkpoints, device="cpu", precision="int8")
    assert pipeline.precision == "fp32" and not torch.backends.cudnn.allow_tf32
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Pipeline.load(small_checkpoints, device="cuda")


def test_one_shot_generate(small_checkpoints, face_png, tiny_speech, tmp_path):
    from sadtalker.pipeline import generate

    with pytest.raises(TypeError, match="unknown option"):
        generate(face_png, tiny_speech, tmp_path / "x.mp4", small_checkpoints, pose=3)
    result = generate(face_png, tiny_speech, tmp_path / "one.mp4", small_checkpoints, device="cpu", seed=9,
                      preprocess="resize")
    assert (result.seed, result.frames, result.width, result.height) == (9, TINY_FRAMES, 256, 256)
    assert result.video_path.exists()


@pytest.mark.parametrize("full", [False, True])
def test_device_postprocess_matches_the_cpu_reference(face_png, rng, full):
    """_final_frames on device tensors (here CPU) against the numpy/OpenCV path: resize, Poisson paste-back."""
    from types import SimpleNamespace

    from sadtalker.pasteback import PasteTarget
    from sadtalker.pipeline import _final_frames

    photo = read_image(face_png)[:300, :400]
    source = SimpleNamespace(paste=PasteTarget(np.ascontiguousarray(photo), (120, 40, 260, 196)) if full else None)
    batch = np.ascontiguousarray(np.stack([photo[20:276, 90:346], photo[30:286, 100:356]]))
    ref = next(_final_frames(iter([batch]), (256, 270), source))
    ours = next(_final_frames(iter([torch.from_numpy(batch).permute(0, 3, 1, 2).float()]), (256, 270), source))
    assert ours.dtype == np.uint8 and ours.shape == ref.shape == ((2, 300, 400, 3) if full else (2, 270, 256, 3))
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.01
    kept = next(_final_frames(iter([torch.from_numpy(batch).permute(0, 3, 1, 2).float()]), (256, 270), source,
                              to_host=False))
    assert isinstance(kept, torch.Tensor)   # stays on the device for the enhancer


def test_postprocess_is_validated_and_the_device_path_renders(small_checkpoints, pipeline, face_png, tiny_speech,
                                                            tmp_path):
    with pytest.raises(ValueError, match="postprocess"):
        Pipeline.load(small_checkpoints, device="cpu", enhancer=False, postprocess="gpu")
    assert pipeline.postprocess == "cpu"   # "auto" on the CPU: the faster reference path
    assert Pipeline(pipeline.checkpoint_dir, pipeline.models, pipeline.analyzer, None, [], "cuda").postprocess == "device"
    on_device = Pipeline(pipeline.checkpoint_dir, pipeline.models, pipeline.analyzer, None, [], "cpu",
                         postprocess="device")
    result = on_device.generate(face_png, tiny_speech, tmp_path / "dev.mp4", GenerateOptions(preprocess="full", seed=1))
    assert_playable_mp4(result.video_path, TINY_FRAMES, expected_size(pipeline, face_png, "full"))


@pytest.mark.parametrize("mode", ["crop", "full"])
def test_known_face_lands_on_the_face_of_the_enhancer_frames(pipeline, face_png, mode):
    """The forced face path: the photo's 5 points mapped into the frames reaching the enhancer sit where a
    detector finds them in those frames (the crop resized to the output size, or the photo itself)."""
    import cv2

    from sadtalker.face.enhancer import usable_landmarks

    options = GenerateOptions(preprocess=mode, seed=0)
    source = pipeline._stage_face(face_png, pipeline._model_for(256), options, _quiet_run())
    known = pipeline._known_face(source, options, face_png)
    if mode == "full":
        frame = read_image(face_png)
    else:
        frame = cv2.resize(source.image, output_size(256, source.info_size))
    found = usable_landmarks(pipeline.analyzer.detect(frame))[0]
    assert known.shape == (5, 2) and np.abs(known - found).max() < 6


def _quiet_run():
    from sadtalker.pipeline import _Run

    return _Run(None, None)


@pytest.mark.slow
def test_force_face_makes_gfpgan_run_on_every_frame(pipeline, reference_dir, face_png, tiny_speech, tmp_path):
    """Stand-in renderer frames are noise: no face is detected, so GFPGAN never runs unless forced."""
    from sadtalker.face import Enhancer
    from sadtalker.face.standin import write_face_standins

    face_dir = tmp_path / "face_models"
    write_face_standins(face_dir / "gfpgan" / "weights", reference_dir, small=True)
    enhancer = Enhancer.load(face_dir, device="cpu", analyzer=pipeline.analyzer)
    restored = []
    original = enhancer.restore_device
    enhancer.restore_device = lambda crops, generator=None: restored.append(len(crops)) or original(crops, generator)
    options = GenerateOptions(enhancer="gfpgan", seed=2)
    for force in (False, True):
        run = Pipeline(pipeline.checkpoint_dir, pipeline.models, pipeline.analyzer, enhancer, [], "cpu",
                       postprocess="device", force_face=force)
        run.generate(face_png, tiny_speech, tmp_path / f"forced_{force}.mp4", options)
        assert sum(restored) == (TINY_FRAMES if force else 0)
