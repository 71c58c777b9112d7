"""Audio front end: decoding real files through ffmpeg, and the mel pipeline against the golden arrays."""

from __future__ import annotations

import subprocess
import wave

import imageio_ffmpeg
import numpy as np
import pytest

from sadtalker import InvalidAudio, audio


def write_wav(path, pcm: np.ndarray, rate: int) -> None:
    """pcm (n,) or (n, channels) int16."""
    pcm = np.asarray(pcm, dtype="<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


@pytest.fixture(scope="module")
def golden(reference_dir):
    with np.load(reference_dir / "sadtalker" / "golden" / "a_audio_frontend.npz") as f:
        return {k: f[k] for k in f.files}


def test_constants_are_consistent():
    assert audio.SAMPLES_PER_FRAME == 640
    assert audio.MEL_FPS / audio.FPS == 3.2
    assert audio.mel_basis().shape == (audio.N_MELS, audio.N_FREQS)


def test_golden_wav_decodes_exactly(reference_dir, golden):
    wav = audio.load_audio(reference_dir / "sadtalker" / "golden" / "synthetic_audio.wav")
    assert wav.dtype == np.float32
    np.testing.assert_array_equal(wav, golden["wav_float32"])
    np.testing.assert_array_equal(wav, golden["pcm_int16"] / np.float32(32768))


def test_front_end_matches_golden(golden):
    wav = golden["wav_float32"]
    num_frames = audio.num_video_frames(len(wav))
    assert num_frames == golden["num_video_frames"]
    mel = audio.mel_spectrogram(audio.fit_to_frames(wav, num_frames))
    np.testing.assert_allclose(audio.preemphasis(wav), golden["preemphasized"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(audio.stft_magnitude(golden["preemphasized"]), golden["stft_magnitude"],
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(mel, golden["mel"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(audio.window_starts(num_frames), golden["mel_window_start"])
    np.testing.assert_array_equal(audio.audio_features(wav), golden["indiv_mels"])


def test_window_starts_truncate_toward_zero_and_clamp():
    starts = audio.window_starts(6)
    assert starts.tolist() == [-6, -3, 0, 3, 6, 9]
    mel = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, audio.N_MELS))  # mel frame i holds i
    windows = audio.mel_windows(mel, 6)
    assert windows.shape == (6, audio.N_MELS, audio.MEL_WINDOW) and windows.dtype == np.float32
    assert windows[0, 0].tolist() == [0] * 7 + list(range(1, 10))  # -6..9 clamped below
    assert windows[5, 0].tolist() == list(range(9, 10)) + [9] * 15  # 9..24 clamped above


def test_frame_count_and_cut():
    assert [audio.num_video_frames(n) for n in (0, 639, 640, 1279, 1280)] == [0, 0, 1, 1, 2]
    wav = np.ones(1000, np.float32)
    assert len(audio.fit_to_frames(wav, 1)) == 640
    padded = audio.fit_to_frames(wav, 2)
    assert len(padded) == 1280 and padded[1000:].sum() == 0
    assert audio.audio_features(np.zeros(1300, np.float32)).shape == (2, 80, 16)


def test_too_short_for_one_frame_is_refused():
    with pytest.raises(InvalidAudio, match="one video frame"):
        audio.audio_features(np.zeros(639, np.float32))


def test_pcm16_at_16k_is_sample_over_32768(tmp_path):
    pcm = np.random.default_rng(0).integers(-32768, 32767, 4000, endpoint=True).astype(np.int16)
    pcm[:2] = [-32768, 32767]
    write_wav(tmp_path / "a.wav", pcm, audio.SAMPLE_RATE)
    np.testing.assert_array_equal(audio.load_audio(tmp_path / "a.wav"), pcm.astype(np.float32) / 32768)


def test_stereo_is_averaged(tmp_path):
    rng = np.random.default_rng(1)
    pcm = rng.integers(-20000, 20000, (3000, 2)).astype(np.int16)
    write_wav(tmp_path / "s.wav", pcm, audio.SAMPLE_RATE)
    expected = (pcm.astype(np.float64) / 32768).mean(axis=1).astype(np.float32)
    np.testing.assert_array_equal(audio.load_audio(tmp_path / "s.wav"), expected)


def test_other_rates_are_resampled(tmp_path):
    rate, seconds, tone_hz = 44100, 1.0, 440.0
    t = np.arange(int(rate * seconds)) / rate
    write_wav(tmp_path / "tone.wav", (0.5 * 32767 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16), rate)
    wav = audio.load_audio(tmp_path / "tone.wav")
    assert abs(len(wav) - audio.SAMPLE_RATE * seconds) <= 1
    spectrum = np.abs(np.fft.rfft(wav))
    assert np.argmax(spectrum) * audio.SAMPLE_RATE / len(wav) == pytest.approx(tone_hz, abs=1.0)
    assert np.abs(wav).max() == pytest.approx(0.5, abs=0.01)


def _wav_seconds(path) -> float:
    with wave.open(str(path)) as f:
        return f.getnframes() / f.getframerate()


@pytest.mark.parametrize("fixture", ["speech_wav", "speech_mp3", "speech_m4a"])
def test_real_speech_loads_to_the_right_length(request, speech_wav, fixture):
    path = request.getfixturevalue(fixture)
    wav = audio.load_audio(path)
    seconds = _wav_seconds(speech_wav)
    assert wav.dtype == np.float32 and wav.ndim == 1
    # codec priming/padding may move the end by a few ms, never by a video frame
    assert abs(len(wav) - seconds * audio.SAMPLE_RATE) < audio.SAMPLES_PER_FRAME
    assert np.sqrt(np.mean(wav**2)) > 0.01 and np.abs(wav).max() <= 1.0
    features = audio.audio_features(wav)
    assert features.shape[0] == audio.num_video_frames(len(wav)) > 100
    assert features.min() >= -4 and features.max() <= 4 and features.std() > 0.5


@pytest.mark.parametrize(("suffix", "codec"), [(".ogg", "libvorbis"), (".flac", "flac")])
def test_ogg_and_flac_decode(tmp_path, speech_wav, suffix, codec):
    path = tmp_path / f"speech{suffix}"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(speech_wav), "-c:a", codec,
                    str(path)], check=True)
    wav, reference = audio.load_audio(path), audio.load_audio(speech_wav)
    assert abs(len(wav) - len(reference)) < audio.SAMPLES_PER_FRAME
    if codec == "flac":  # lossless: the same samples as the WAV
        np.testing.assert_array_equal(wav, reference)


def test_six_channels_are_averaged(tmp_path):
    pcm = np.random.default_rng(2).integers(-9000, 9000, (1600, 6)).astype(np.int16)
    write_wav(tmp_path / "surround.wav", pcm, audio.SAMPLE_RATE)
    expected = (pcm.astype(np.float64) / 32768).mean(axis=1).astype(np.float32)
    np.testing.assert_allclose(audio.load_audio(tmp_path / "surround.wav"), expected, rtol=0, atol=1e-7)


def test_non_audio_file_is_refused(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("this is not audio at all\n" * 50)
    with pytest.raises(InvalidAudio, match="notes.mp3") as e:
        audio.load_audio(path)
    assert e.value.code == "invalid_audio"


@pytest.mark.parametrize("make", ["empty", "header_only", "missing", "video_only"])
def test_empty_or_audio_less_input_is_refused(tmp_path, make):
    path = tmp_path / f"{make}.wav"
    if make == "empty":
        path.write_bytes(b"")
    elif make == "header_only":
        write_wav(path, np.zeros(0, np.int16), audio.SAMPLE_RATE)
    elif make == "video_only":
        path = tmp_path / "video.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "color=c=red:s=32x32:d=0.2", "-c:v", "mpeg4", str(path)], check=True)
    with pytest.raises(InvalidAudio):
        audio.load_audio(path)
