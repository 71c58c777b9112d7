"""`python -m sadtalker`: astronaut + espeak speech -> playable MP4 (a real subprocess), with stand-in
checkpoints in their official file formats; one-line errors and exit codes (in-process `main`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sadtalker.__main__ import main
from sadtalker.encode import count_frames, ffmpeg_exe, probe

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sadtalker", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def speech_clip(media_dir, speech_wav) -> Path:
    """0.1 s of the espeak speech as MP3 (2 video frames)."""
    path = media_dir / "speech_cli.mp3"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(speech_wav), "-t", "0.1", str(path)], check=True)
    return path


def test_generate_writes_a_playable_mp4(small_checkpoints, face_jpg, speech_clip, tmp_path):
    out = tmp_path / "talk.mp4"
    proc = run_cli("generate", "--image", face_jpg, "--audio", speech_clip, "--out", out, "--checkpoint-dir",
                   small_checkpoints, "--seed", "4", "--device", "cpu", "--preprocess", "resize")
    assert proc.returncode == 0, proc.stderr
    assert "render" in proc.stderr and "encode" in proc.stderr   # one progress bar per stage
    assert "seed 4" in proc.stdout and "256x256" in proc.stdout
    info = probe(out)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert count_frames(out) == 2 and info.duration_s == pytest.approx(0.08, abs=0.03)


def test_photo_without_a_face_is_a_one_line_error(small_checkpoints, noface_png, speech_clip, tmp_path, capsys):
    code = main(["generate", "--image", str(noface_png), "--audio", str(speech_clip), "--out",
                 str(tmp_path / "x.mp4"), "--checkpoint-dir", str(small_checkpoints), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    errors = [line for line in err.splitlines() if line.startswith("sadtalker: error")]
    assert len(errors) == 1 and "[no_face_detected]" in errors[0]
    assert "Traceback" not in err and not (tmp_path / "x.mp4").exists()


def test_missing_checkpoints_exit_4_with_the_file_names(tmp_path, face_png, speech_clip, capsys):
    code = main(["generate", "--image", str(face_png), "--audio", str(speech_clip), "--out",
                 str(tmp_path / "x.mp4"), "--checkpoint-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 4
    assert "[models_unavailable]" in err and "SadTalker_V0.0.2_256.safetensors" in err
    assert main(["check", "--checkpoint-dir", str(tmp_path), "--size", "256", "512"]) == 4
    assert capsys.readouterr().out.count("missing:") == 4


def test_bad_arguments_exit_2(tmp_path, face_png, speech_clip, capsys):
    code = main(["generate", "--image", str(face_png), "--audio", str(speech_clip), "--out",
                 str(tmp_path / "x.mp4"), "--pose-style", "99"])
    assert code == 2 and "pose_style must be in 0..45" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["generate", "--image", str(face_png)])
    assert info.value.code == 2
