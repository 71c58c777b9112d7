"""Audio front end (ARCHITECTURE §3): any audio file -> 16 kHz mono waveform -> normalised mel
spectrogram -> one (80, 16) mel window per 25 fps video frame, the input of both audio networks.

Everything here is a pure function of its arguments except `load_audio`, which runs ffmpeg.
Pre-emphasis, STFT and mel are computed in float64 like the reference; windows are float32.
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
from os import PathLike
from pathlib import Path

import numpy as np

from .containers import AUDIO_DEMUXERS, describe, ffmpeg_input, sniff_file
from .errors import InvalidAudio

log = logging.getLogger(__name__)


def exact_div(x: int, y: int) -> int:
    assert x % y == 0, f"{x} is not a multiple of {y}"
    return x // y


# hard-coded audio hyperparameters of the reference
SAMPLE_RATE = 16000  # Hz
FPS = 25  # video frames per second
N_FFT = 800  # samples per STFT window (50 ms)
HOP_LENGTH = 200  # samples between STFT frames (12.5 ms)
N_MELS = 80
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0  # dB floor: amplitudes below 10**(-100/20) = 1e-5 are clipped
REF_LEVEL_DB = 20.0  # dB subtracted after conversion
MAX_ABS_VALUE = 4.0  # normalised mels lie in [-4, 4]
MEL_WINDOW = 16  # mel frames seen by the audio encoders per video frame (200 ms)
WINDOW_OFFSET = -2  # video frames: window i starts at the time of frame i - 2

SAMPLES_PER_FRAME = exact_div(SAMPLE_RATE, FPS)  # 640 samples per video frame
MEL_FPS = exact_div(SAMPLE_RATE, HOP_LENGTH)  # 80 mel frames per second (3.2 per video frame)
N_FREQS = N_FFT // 2 + 1  # 401 rFFT bins

MEL_BASIS_PATH = Path(__file__).with_name("assets") / "mel_basis_80x401.npz"
STDERR_TAIL_LINES = 4  # lines of ffmpeg's stderr quoted in InvalidAudio
DECODE_TIMEOUT_S = 300.0  # a decode that takes longer is treated as a broken file
# soxr at 28-bit precision ("very high quality"); the reference (librosa 0.9.2) uses resampy's
# kaiser_best, so resampled audio differs slightly from the reference. 16 kHz input is not resampled.
RESAMPLE_FILTER = f"aresample={SAMPLE_RATE}:resampler=soxr:precision=28"


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def load_audio(path: str | PathLike) -> np.ndarray:
    """Decode an audio file (WAV, MP3, AAC, M4A, OGG/Opus, FLAC, WebM; recognised by content and opened as
    exactly that container) to a float32 mono waveform at `SAMPLE_RATE`.

    PCM16 input gives exactly sample / 32768; channels are averaged (like librosa); input at
    another rate is resampled with soxr. Raises InvalidAudio (with ffmpeg's stderr) when the file
    cannot be decoded, has no audio stream, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidAudio(f"audio file not found: {path}")
    demuxer = sniff_file(path)
    if demuxer not in AUDIO_DEMUXERS:
        raise InvalidAudio(f"{path.name!r} is not an audio container this package reads "
                           f"({describe(AUDIO_DEMUXERS)})")
    cmd = [_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", *ffmpeg_input(path, demuxer),
           "-vn", "-sn", "-dn", "-af", RESAMPLE_FILTER, "-c:a", "pcm_f32le", "-f", "wav", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=True, timeout=DECODE_TIMEOUT_S)
    except subprocess.CalledProcessError as e:
        raise InvalidAudio(f"cannot decode audio {path.name!r}: {_stderr_summary(e.stderr, path)}") from e
    except subprocess.TimeoutExpired as e:
        raise InvalidAudio(f"decoding audio {path.name!r} took over {DECODE_TIMEOUT_S:.0f} s") from e
    try:
        channels, rate, samples = parse_float_wav(proc.stdout)
    except ValueError as e:
        raise InvalidAudio(f"cannot decode audio {path.name!r}: {e}") from e
    if rate != SAMPLE_RATE:  # ffmpeg was asked for SAMPLE_RATE; anything else is a broken pipe
        raise InvalidAudio(f"ffmpeg produced {rate} Hz instead of {SAMPLE_RATE} Hz for {path.name!r}")
    wav = samples.reshape(-1, channels)
    if wav.shape[0] == 0:
        raise InvalidAudio(f"audio {path.name!r} contains no samples")
    if channels > 1:
        wav = wav.mean(axis=1, dtype=np.float64)
    return np.ascontiguousarray(wav.reshape(-1), dtype=np.float32)


def _stderr_summary(stderr: bytes, path: Path) -> str:
    """ffmpeg's last error lines, without component tags and with the file's directory removed."""
    text = stderr.decode("utf-8", "replace").replace(str(path), path.name)
    lines = [re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\] ", "", ln.strip()) for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-STDERR_TAIL_LINES:]) or "ffmpeg failed without a message"


def parse_float_wav(data: bytes) -> tuple[int, int, np.ndarray]:
    """(channels, sample rate, interleaved float32 samples) of a float WAV streamed by ffmpeg.

    Size fields are not trusted: a piped WAV cannot be rewound to fill them in, so the data chunk
    is taken to run to the end of the stream.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("decoder output is not a WAV stream")
    pos, channels, rate = 12, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = pos + 8
        if chunk == b"fmt ":
            channels = int.from_bytes(data[body + 2:body + 4], "little")
            rate = int.from_bytes(data[body + 4:body + 8], "little")
            bits = int.from_bytes(data[body + 14:body + 16], "little")
            if bits != 32:
                raise ValueError(f"expected 32-bit float samples, got {bits}-bit")
        elif chunk == b"data":
            if channels < 1:
                raise ValueError("WAV data before its format chunk")
            payload = data[body:]
            payload = payload[: len(payload) - len(payload) % (4 * channels)]
            return channels, rate, np.frombuffer(payload, dtype="<f4")
        pos = body + size + (size & 1)
    raise ValueError("no audio data in decoder output")


def num_video_frames(num_samples: int) -> int:
    """Video frames (25 fps) covered by `num_samples` at 16 kHz: whole frames only."""
    return int(num_samples / SAMPLES_PER_FRAME)


def fit_to_frames(wav: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut or zero-pad `wav` to exactly `num_frames` video frames (num_frames * 640 samples)."""
    n = num_frames * SAMPLES_PER_FRAME
    if len(wav) >= n:
        return wav[:n]
    return np.pad(wav, (0, n - len(wav)))


@functools.cache
def mel_basis() -> np.ndarray:
    """(80, 401) float32 slaney mel filter bank (fmin 55 Hz, fmax 7600 Hz), read-only."""
    with np.load(MEL_BASIS_PATH) as f:
        basis = f["mel_basis"]
    assert basis.shape == (N_MELS, N_FREQS), basis.shape
    basis.setflags(write=False)
    return basis


def preemphasis(wav: np.ndarray) -> np.ndarray:
    """y[n] = x[n] - 0.97 x[n-1] with x[-1] = 0, in float64."""
    x = np.asarray(wav, dtype=np.float64)
    y = x.copy()
    y[1:] -= PREEMPHASIS * x[:-1]
    return y


def stft_magnitude(y: np.ndarray) -> np.ndarray:
    """(401, 1 + len(y) // 200) float64 |STFT|: periodic Hann, centred frames, zero padding."""
    y = np.pad(np.asarray(y, dtype=np.float64), N_FFT // 2)
    n_frames = 1 + (len(y) - N_FFT) // HOP_LENGTH
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP_LENGTH][:n_frames]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    return np.abs(np.fft.rfft(frames * window, axis=1)).T


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(F, 80) float64 mel spectrogram normalised to [-4, 4]; F = 1 + len(wav) // 200."""
    mel = mel_basis().astype(np.float64) @ stft_magnitude(preemphasis(wav))  # (80, F)
    min_level = 10.0 ** (MIN_LEVEL_DB / 20.0)
    db = 20.0 * np.log10(np.maximum(min_level, mel)) - REF_LEVEL_DB
    norm = (2.0 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(norm, -MAX_ABS_VALUE, MAX_ABS_VALUE).T


def window_starts(num_frames: int) -> np.ndarray:
    """(T,) int64 first mel frame of each video frame's window, before clamping.

    int(80 * ((i - 2) / 25)) with Python's truncation toward zero: frame 0 -> -6, frame 1 -> -3.
    """
    i = np.arange(num_frames, dtype=np.float64)
    return np.trunc(float(MEL_FPS) * ((i + WINDOW_OFFSET) / float(FPS))).astype(np.int64)


def mel_windows(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, 80, 16) float32: for each video frame the 16 mel frames from its start, indices clamped."""
    idx = window_starts(num_frames)[:, None] + np.arange(MEL_WINDOW)  # (T, 16)
    idx = np.clip(idx, 0, len(mel) - 1)
    return np.ascontiguousarray(mel[idx].transpose(0, 2, 1), dtype=np.float32)


def audio_features(wav: np.ndarray) -> np.ndarray:
    """(T, 80, 16) float32 mel windows of a 16 kHz waveform; T = whole 40 ms video frames.

    Raises InvalidAudio when the clip is shorter than one video frame.
    """
    num_frames = num_video_frames(len(wav))
    if num_frames < 1:
        raise InvalidAudio(f"audio is {len(wav) / SAMPLE_RATE * 1000:.0f} ms long; at least "
                           f"{1000 // FPS} ms (one video frame) is needed")
    return mel_windows(mel_spectrogram(fit_to_frames(wav, num_frames)), num_frames)
