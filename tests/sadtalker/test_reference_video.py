"""Reference videos (ref_eyeblink / ref_pose): per-frame 3DMM of a short video made from the astronaut."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from sadtalker.encode import VideoEncoder, ffmpeg_exe
from sadtalker.errors import NoFaceDetected
from sadtalker.pipeline import GenerateOptions, Pipeline, _Run
from sadtalker.preprocess import prepare_source, read_image
from sadtalker.reference_video import InvalidVideo, reference_coeffs, tile_to


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    with VideoEncoder(path, None, width, height, len(frames)) as encoder:
        encoder.write(np.stack(frames))
        return encoder.close()


@pytest.fixture(scope="module")
def pipeline(small_checkpoints) -> Pipeline:
    return Pipeline.load(small_checkpoints, device="cpu", enhancer=False)


@pytest.fixture(scope="module")
def moving_face(media_dir, face_png, noface_png) -> Path:
    """Six frames: the astronaut drifting right and nodding, with a faceless frame (coffee) at index 3."""
    face = read_image(face_png)
    cup = cv2.resize(read_image(noface_png), (512, 512))
    frames = []
    for k in range(6):
        shifted = np.roll(face, (3 * k, 4 * k), axis=(0, 1))
        frames.append(cup if k == 3 else shifted)
    return write_video(media_dir / "moving_face.mp4", frames)


def test_coefficients_per_frame_with_a_faceless_frame(pipeline, moving_face):
    model = pipeline.models[256]
    coeffs = reference_coeffs(pipeline.analyzer, model.face3d, moving_face, mode="crop", size=256, max_frames=100)
    assert coeffs.shape == (6, 73) and coeffs.dtype == np.float32
    assert np.isfinite(coeffs).all()
    assert not np.array_equal(coeffs[0], coeffs[5])   # the face moved


def test_only_the_needed_frames_are_read(pipeline, moving_face):
    coeffs = reference_coeffs(pipeline.analyzer, pipeline.models[256].face3d, moving_face, mode="extcrop",
                              size=256, max_frames=2)
    assert coeffs.shape == (2, 73)


def test_video_starting_without_a_face(pipeline, media_dir, noface_png):
    cup = read_image(noface_png)
    video = write_video(media_dir / "cup.mp4", [cup[:400, :600]] * 2)
    with pytest.raises(NoFaceDetected, match="reference video cup.mp4"):
        reference_coeffs(pipeline.analyzer, pipeline.models[256].face3d, video, mode="crop", size=256,
                         max_frames=5)


def test_unreadable_videos(pipeline, tmp_path, face_png):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    for path in (notes, tmp_path / "missing.mp4"):
        with pytest.raises(InvalidVideo) as info:
            reference_coeffs(pipeline.analyzer, pipeline.models[256].face3d, path, mode="crop", size=256,
                             max_frames=5)
        assert info.value.code == "invalid_video"


def test_tile_to_repeats_from_the_start():
    seq = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(tile_to(seq, 7)[:, 0], [0, 2, 4, 0, 2, 4, 0])
    np.testing.assert_array_equal(tile_to(seq, 2), seq[:2])


def test_reference_videos_drive_expression_and_pose(pipeline, face_png, speech_wav, moving_face):
    from sadtalker.audio import audio_features, load_audio

    model = pipeline.models[256]
    source = prepare_source(pipeline.analyzer, model.face3d, read_image(face_png), "crop", 256)
    mels = audio_features(load_audio(speech_wav))
    run = _Run(None, None)

    def coeffs(**refs) -> np.ndarray:
        return pipeline._stage_coefficients(model, source, mels, GenerateOptions(**refs), 7, run)

    plain, blink, pose = coeffs(), coeffs(ref_eyeblink=moving_face), coeffs(ref_pose=moving_face)
    assert not np.allclose(plain[:, :64], blink[:, :64])
    np.testing.assert_allclose(plain[:, 64:], blink[:, 64:], atol=1e-5)
    np.testing.assert_allclose(plain[:, :64], pose[:, :64], atol=1e-5)
    ref = reference_coeffs(pipeline.analyzer, model.face3d, moving_face, mode="crop", size=256, max_frames=6)
    expected = tile_to(ref[:, 64:70], len(mels))
    np.testing.assert_allclose(pose[:, 64:] - plain[:, 64:], expected - expected[:1], atol=1e-4)


def test_generate_with_both_reference_videos(pipeline, face_png, media_dir, speech_wav, moving_face, tmp_path):
    clip = media_dir / "speech_ref_2frames.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(speech_wav), "-t", "0.1", str(clip)], check=True)
    result = pipeline.generate(face_png, clip, tmp_path / "ref.mp4",
                               GenerateOptions(ref_eyeblink=moving_face, ref_pose=moving_face, seed=1))
    assert result.frames == 2 and result.video_path.stat().st_size > 0
