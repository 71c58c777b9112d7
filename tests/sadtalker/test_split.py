"""One job across two "devices" (both the CPU here, each with its own model replica): the joined MP4 has the
frames, duration, size and audio of the single-device video, progress is one combined count, and a failing
segment fails the job without leaving files behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from sadtalker.encode import count_frames, ffmpeg_exe, probe
from sadtalker.pipeline import GenerateOptions, Pipeline
from sadtalker.split import SplitPipeline, plan_segments

CLIP_FRAMES = 10


@pytest.fixture(scope="module")
def clip_speech(media_dir, speech_wav) -> Path:
    out = media_dir / "speech_10frames.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(speech_wav), "-t", "0.4", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def two_devices(small_checkpoints) -> SplitPipeline:
    return SplitPipeline.load(small_checkpoints, ["cpu", "cpu"], min_segment_frames=4, enhancer=False)


def decode(path: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_plan_segments_policy():
    assert plan_segments(10, 2, 4) == [range(0, 5), range(5, 10)]
    assert plan_segments(11, 3, 4) == [range(0, 6), range(6, 11)]    # 11 // 4 = 2 segments of >= 4 frames
    assert plan_segments(7, 8, 4) == [range(0, 7)]                   # too short to split
    assert plan_segments(3, 8, 125) == [range(0, 3)]
    parts = plan_segments(7500, 8)                                   # 5 min on 8 GPUs: 8 x 937-938 frames
    assert len(parts) == 8 and {len(p) for p in parts} == {937, 938}
    assert [p.start for p in parts[1:]] == [p.stop for p in parts[:-1]] and parts[-1].stop == 7500
    with pytest.raises(ValueError):
        plan_segments(0, 2)


def test_two_devices_give_the_single_device_video(two_devices, face_png, clip_speech, tmp_path):
    options = GenerateOptions(seed=4, batch_size=2)
    events = []
    split = two_devices.generate(face_png, clip_speech, tmp_path / "split.mp4", options,
                                 progress=lambda stage, done, total: events.append((stage, done, total)))
    single = two_devices.pipelines[0].generate(face_png, clip_speech, tmp_path / "single.mp4", options)
    assert two_devices.last_segments == [range(0, 5), range(5, 10)]
    assert (split.frames, split.width, split.height) == (single.frames, single.width, single.height) == (
        CLIP_FRAMES, single.width, single.height)
    a, b = probe(split.video_path), probe(single.video_path)
    assert (a.video_codec, a.pix_fmt, a.fps, a.audio_codec, a.audio_rate) == (
        b.video_codec, b.pix_fmt, b.fps, b.audio_codec, b.audio_rate) == ("h264", "yuv420p", 25.0, "aac", 16000)
    assert a.duration_s == pytest.approx(b.duration_s, abs=0.03)
    assert count_frames(split.video_path) == count_frames(single.video_path) == CLIP_FRAMES
    frames_split = decode(split.video_path, split.width, split.height).astype(int)
    frames_single = decode(single.video_path, single.width, single.height).astype(int)
    per_frame = np.abs(frames_split - frames_single).mean(axis=(1, 2, 3))
    assert per_frame.max() < 4, per_frame   # the same frames (see the next test); only the H.264 GOPs differ
    render = [(done, total) for stage, done, total in events if stage == "render"]
    assert [d for d, _ in render] == sorted(d for d, _ in render) and render[-1] == (CLIP_FRAMES, CLIP_FRAMES)
    assert events[-1] == ("encode", 1, 1) and [e for e in events if e[0] == "encode"] == [("encode", 0, 1),
                                                                                           ("encode", 1, 1)]
    assert split.stages["render"]["frames"] == CLIP_FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.mp4", "split.mp4"]


def test_a_failing_segment_fails_the_job_and_leaves_no_files(small_checkpoints, face_png, clip_speech, tmp_path):
    good = Pipeline.load(small_checkpoints, device="cpu", enhancer=False)
    bad = Pipeline.load(small_checkpoints, device="cpu", enhancer=False)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    bad.models[256].generator.animate = broken
    with pytest.raises(RuntimeError, match="illegal memory access"):
        SplitPipeline([good, bad], min_segment_frames=4).generate(face_png, clip_speech, tmp_path / "x.mp4",
                                                                  GenerateOptions(seed=1))
    assert list(tmp_path.iterdir()) == []


def test_a_segment_renders_exactly_the_frames_of_the_whole_clip(two_devices, face_png):
    from sadtalker.animate import render_frames
    from sadtalker.preprocess import prepare_source, read_image

    model = two_devices.pipelines[1].models[256]
    source = prepare_source(two_devices.analyzer, model.face3d, read_image(face_png), "crop", 256)
    coeffs = np.random.default_rng(0).normal(0, 0.3, (CLIP_FRAMES, 70)).astype(np.float32)
    whole = np.concatenate(list(render_frames(model, source.image, source.coeff, coeffs, batch_size=4)))
    tail = np.concatenate(list(render_frames(model, source.image, source.coeff, coeffs, batch_size=2,
                                             frames=range(5, CLIP_FRAMES))))
    diff = np.abs(tail.astype(int) - whole[5:].astype(int))   # other batch groupings: float rounding only
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005     # the conformance uint8 tolerance
    with pytest.raises(ValueError, match="frames must be"):
        next(render_frames(model, source.image, source.coeff, coeffs, frames=range(8, 12)))
