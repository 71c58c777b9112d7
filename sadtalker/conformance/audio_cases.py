"""Golden cases of the audio side: front end (a), ExpNet (b), PoseVAE (c), 3DMM recon net (g).

Every output array a case file holds is compared; optional arrays that are absent are skipped, and all
sizes, seeds and classes are read from the arrays or the directory's parameters, so other golden sets
with other inputs run unchanged.
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import audio
from ..audio2exp import ExpNet
from ..audio2pose import PoseVAE
from ..coeffs import smooth_pose
from ..face3d import ReconNet
from .core import CaseContext, Result, Tolerance, compare

DEFAULT_MAIN_MANIFEST = "manifests/SadTalker_V0.0.2_256.safetensors.json"  # when params.json names none
AUDIO_ABS = 1e-6  # float64 front end
RESAMPLED_ABS = 1e-2  # waveform resampled from another rate (full scale is 1)
COEFF_REL = 1e-5  # network outputs, relative to the largest magnitude of the expected output
GPU_FACTOR = 10.0  # tolerance multiplier on CUDA (TF32 disabled)
EXACT = Tolerance("exact")


def _coeff_tol(ctx: CaseContext) -> Tolerance:
    return Tolerance("rel", COEFF_REL * (GPU_FACTOR if ctx.device.startswith("cuda") else 1.0))


def _network(ctx: CaseContext, cls: type[nn.Module], prefix: str) -> nn.Module:
    """`cls` loaded with the stand-in weights of the main manifest's `prefix.` block, on ctx.device."""
    manifest = ctx.params.get("manifest_main", DEFAULT_MAIN_MANIFEST)
    weights = ctx.weights(manifest)
    state = {k[len(prefix) + 1:]: v for k, v in weights.items() if k.startswith(prefix + ".")}
    net = cls.from_state_dict(state, f"{manifest} ({prefix}.*)")  # type: ignore[attr-defined]
    return net.to(ctx.device).eval()


def _tensor(array: np.ndarray, ctx: CaseContext) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(ctx.device)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _decode_pcm16(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Round-trip int16 samples through a mono WAV file and `audio.load_audio` (ffmpeg)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "golden.wav"
        with wave.open(str(path), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(sample_rate)
            f.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
        return audio.load_audio(path)


def audio_frontend(arrays: dict, ctx: CaseContext) -> list[Result]:
    rows = []
    wav = arrays.get("wav_float32")
    if "pcm_int16" in arrays:
        rate = int(ctx.params.get("a", {}).get("sr", audio.SAMPLE_RATE))
        decoded = _decode_pcm16(arrays["pcm_int16"], rate)
        if wav is not None:
            # 16 kHz PCM is decoded bit-exactly; other rates go through a different resampler than
            # the reference's (soxr vs resampy kaiser_best), which only agrees approximately
            tol = EXACT if rate == audio.SAMPLE_RATE else Tolerance("abs", RESAMPLED_ABS)
            rows.append(compare("wav_float32", decoded, wav, tol))
        wav = decoded if wav is None else wav  # the math below starts from the reference's waveform
    num_frames = audio.num_video_frames(len(wav))
    cut = audio.fit_to_frames(wav, num_frames)
    pre = audio.preemphasis(cut)
    mel = audio.mel_spectrogram(cut)
    actual = {
        "num_video_frames": (np.asarray(num_frames), EXACT),
        "wav_length": (np.asarray(len(cut)), EXACT),
        "mel_basis": (audio.mel_basis(), EXACT),
        "preemphasized": (pre, Tolerance("abs", AUDIO_ABS)),
        "stft_magnitude": (audio.stft_magnitude(pre), Tolerance("abs", AUDIO_ABS)),
        "mel": (mel, Tolerance("abs", AUDIO_ABS)),
        "mel_window_start": (audio.window_starts(num_frames), EXACT),
        "indiv_mels": (audio.mel_windows(mel, num_frames), Tolerance("abs", AUDIO_ABS)),
    }
    for name, (value, tol) in actual.items():
        if name in arrays:
            rows.append(compare(name, value, arrays[name], tol))
    return rows


@torch.no_grad()
def audio2exp(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _network(ctx, ExpNet, "audio2exp")
    mels = _tensor(arrays["indiv_mels"], ctx).flatten(0, 1)  # B*T x 1 x 80 x 16
    ref = _tensor(arrays["ref"], ctx)[..., :net.dims.exp_dim].flatten(0, 1)  # B*T x 64
    ratio = _tensor(arrays["ratio"], ctx).flatten(0, 1)  # B*T x 1
    rows = []
    if "audio_embedding" in arrays:
        rows.append(compare("audio_embedding", _numpy(net.audio_encoder.embed(mels)),
                            arrays["audio_embedding"], _coeff_tol(ctx)))
    expected = arrays["exp_coeff_pred"]
    rows.append(compare("exp_coeff_pred", _numpy(net(mels, ref, ratio)).reshape(expected.shape),
                        expected, _coeff_tol(ctx)))
    return rows


@torch.no_grad()
def audio2pose(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _network(ctx, PoseVAE, "audio2pose")
    tol = _coeff_tol(ctx)
    rows = []
    if "dec_pose_motion_pred" in arrays:
        motion = net.decode(_tensor(arrays["dec_z"], ctx), int(arrays["dec_class"]),
                            _tensor(arrays["dec_ref6"], ctx), _tensor(arrays["dec_audio_emb"], ctx))
        rows.append(compare("dec_pose_motion_pred", _numpy(motion), arrays["dec_pose_motion_pred"], tol))
    for prefix in sorted(k[: -len("_indiv_mels")] for k in arrays if k.endswith("_indiv_mels")):
        rows.extend(_pose_test(net, arrays, prefix, ctx, tol))
    return rows


def _pose_test(net: PoseVAE, arrays: dict, prefix: str, ctx: CaseContext, tol: Tolerance) -> list[Result]:
    """One full `predict_motion` run (§5.5) with the saved noise, plus the smoothing of §5.6."""
    pose_dim = net.dims.pose_dim
    ref = _tensor(arrays[f"{prefix}_ref70"], ctx).reshape(1, -1)[:, 64:64 + pose_dim]
    z = _tensor(arrays[f"{prefix}_z"], ctx)  # n_blocks x 1 x 64, in draw order
    mels = _tensor(arrays[f"{prefix}_indiv_mels"], ctx)
    style = int(arrays[f"{prefix}_class"])
    motion = _numpy(net.generate_motion(mels, ref, style, lambda k: z[k]))
    pose = _numpy(ref)[:, None, :] + motion
    outputs = {"pose_pred": pose, "pose_motion_pred": motion,
               "pose_pred_savgol": smooth_pose(pose[0])[None]}
    return [compare(f"{prefix}_{name}", value, arrays[f"{prefix}_{name}"], tol)
            for name, value in outputs.items() if f"{prefix}_{name}" in arrays]


@torch.no_grad()
def face3d_recon(arrays: dict, ctx: CaseContext) -> list[Result]:
    net = _network(ctx, ReconNet, "face_3drecon")
    image = arrays["image_uint8"]  # H x W x 3 uint8; the net sees uint8 / 255 in float32
    img = (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0).to(ctx.device)
    return [compare("coeff_257", _numpy(net(img)), arrays["coeff_257"], _coeff_tol(ctx))]


CASES = {
    "audio_frontend": audio_frontend,
    "audio2exp": audio2exp,
    "audio2pose": audio2pose,
    "face3d_recon": face3d_recon,
}
