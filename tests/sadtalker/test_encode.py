"""The MP4 writer with the real ffmpeg: codecs, length, +faststart, streaming, errors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from sadtalker.audio import load_audio, num_video_frames
from sadtalker.encode import VideoEncoder, count_frames, probe
from sadtalker.errors import EncodeError


def top_level_atoms(path: Path) -> list[str]:
    """MP4 box types at the top level, in file order."""
    data = path.read_bytes()
    atoms, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        atoms.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return atoms


def frames_for(n: int, width: int, height: int) -> np.ndarray:
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, None, :, None]
    shift = np.arange(n, dtype=np.float32)[:, None, None, None] * 7
    return ((ramp + shift) % 256 * np.ones((1, height, 1, 3))).astype(np.uint8)


def encode(out: Path, audio: Path | None, width: int, height: int, num_frames: int, batch: int = 4) -> Path:
    with VideoEncoder(out, audio, width, height, num_frames) as encoder:
        for start in range(0, num_frames, batch):
            encoder.write(frames_for(min(batch, num_frames - start), width, height))
        return encoder.close()


def test_h264_aac_as_long_as_the_audio_with_faststart(tmp_path, speech_wav):
    num_frames = num_video_frames(len(load_audio(speech_wav)))
    out = encode(tmp_path / "talk.mp4", speech_wav, 256, 256, num_frames)
    info = probe(out)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert (info.width, info.height, info.fps) == (256, 256, 25.0)
    assert count_frames(out) == num_frames
    assert info.duration_s == pytest.approx(num_frames / 25, abs=0.05)
    atoms = top_level_atoms(out)
    assert atoms.index("moov") < atoms.index("mdat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]


@pytest.mark.parametrize("fixture", ["speech_mp3", "speech_m4a"])
def test_compressed_speech_is_muxed(tmp_path, request, fixture):
    audio = request.getfixturevalue(fixture)
    num_frames = num_video_frames(len(load_audio(audio)))
    info = probe(encode(tmp_path / "talk.mp4", audio, 128, 128, num_frames))
    assert info.audio_codec == "aac"
    assert info.duration_s == pytest.approx(num_frames / 25, abs=0.05)


def test_odd_sizes_are_padded_to_even(tmp_path, short_speech_wav):
    out = encode(tmp_path / "odd.mp4", short_speech_wav, 255, 205, 15)
    info = probe(out)
    assert (info.width, info.height) == (256, 206)


def test_frames_are_streamed_not_written_to_disk(tmp_path, short_speech_wav):
    with VideoEncoder(tmp_path / "s.mp4", short_speech_wav, 64, 64, 15) as encoder:
        encoder.write(frames_for(8, 64, 64))
        during = sorted(p.name for p in tmp_path.iterdir())
        encoder.write(frames_for(7, 64, 64))
        encoder.close()
    assert set(during) <= {".s.mp4.partial"}   # at most the MP4 being written: no frame images
    assert count_frames(tmp_path / "s.mp4") == 15


def test_wrong_frame_count_is_an_error_and_leaves_nothing(tmp_path, short_speech_wav):
    with pytest.raises(EncodeError, match="expected 15"), \
            VideoEncoder(tmp_path / "x.mp4", short_speech_wav, 64, 64, 15) as encoder:
        encoder.write(frames_for(4, 64, 64))
        encoder.close()
    assert list(tmp_path.iterdir()) == []


def test_unreadable_audio_reports_ffmpeg_stderr(tmp_path):
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"RIFF\x00\x01\x00\x00WAVE" + b"not audio at all" * 10)  # a WAV header, then garbage
    with pytest.raises(EncodeError, match="(?i)invalid|error"):
        encode(tmp_path / "x.mp4", bogus, 64, 64, 10, batch=10)
    assert not (tmp_path / "x.mp4").exists()


def test_audio_in_no_allowed_container_is_refused_before_ffmpeg(tmp_path):
    playlist = tmp_path / "list.wav"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    with pytest.raises(EncodeError, match="not an audio container"):
        encode(tmp_path / "x.mp4", playlist, 64, 64, 10, batch=10)
    assert list(tmp_path.iterdir()) == [playlist]


def test_exception_inside_aborts_and_removes_partial(tmp_path, short_speech_wav):
    with pytest.raises(RuntimeError), VideoEncoder(tmp_path / "x.mp4", short_speech_wav, 64, 64, 15) as enc:
        enc.write(frames_for(3, 64, 64))
        raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_frames_of_the_wrong_size_are_refused(tmp_path):
    with pytest.raises(ValueError, match="do not match"), VideoEncoder(tmp_path / "x.mp4", None, 64, 64, 2) as enc:
        enc.write(frames_for(2, 32, 32))
