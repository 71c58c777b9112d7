"""PoseVAE: official tensor names, strict loading, the block/noise logic of predict_motion, golden outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_weights import MAIN, manifest_shapes, standin_state

from sadtalker import CheckpointError
from sadtalker.audio2pose import PoseVAE, PoseVAEDims
from sadtalker.coeffs import smooth_pose


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    net = PoseVAE(PoseVAEDims.small()).eval()
    for m in net.modules():  # non-trivial BN statistics so that every layer matters
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        net.netG.decoder.classbias.normal_()  # zeros by construction; a trained file has per-style biases
    return net


class RecordingNoise:
    """noise(k) that records the block indices asked for and returns a distinct z per block."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, k: int) -> torch.Tensor:
        self.calls.append(k)
        return torch.full((1, 64), float(k + 1))


@pytest.mark.parametrize(("file", "prefix"), [(MAIN, "audio2pose."), ("auido2pose_00140-model.pth", "model.")])
def test_names_and_shapes_are_the_official_ones(reference_dir, file, prefix):
    ours = {k: tuple(v.shape) for k, v in PoseVAE().state_dict().items()}
    assert ours == manifest_shapes(reference_dir, file, prefix)


def test_small_dims_round_trip(small_net):
    state = small_net.state_dict()
    assert list(state) == list(PoseVAE().state_dict())
    assert PoseVAE.from_state_dict(state, "small").dims == PoseVAEDims.small()


@pytest.mark.parametrize(("num_frames", "blocks"), [(1, []), (2, [0]), (33, [0]), (34, [0, 1]),
                                                     (77, [0, 1, 2])])
def test_one_noise_draw_per_block_in_order(small_net, num_frames, blocks):
    noise = RecordingNoise()
    ref = torch.randn(1, 6)
    with torch.no_grad():
        pose = small_net.predict_motion(torch.randn(1, num_frames, 1, 80, 16), ref, 5, noise)
    assert pose.shape == (1, num_frames, 6)
    assert noise.calls == blocks
    torch.testing.assert_close(pose[:, 0], ref)  # the first frame keeps the source pose


def test_remainder_block_reuses_the_last_32_windows(small_net):
    """With 45 frames (44 generated), the remainder's 12 motions come from windows 13..44."""
    mels, ref = torch.randn(1, 45, 1, 80, 16), torch.randn(1, 6)
    noise = RecordingNoise()
    with torch.no_grad():
        motion = small_net.generate_motion(mels, ref, 3, noise)
        emb = small_net.embed(mels[0, 1:])[None]
        last = small_net.decode(noise(1), 3, ref, emb[:, -32:])
    torch.testing.assert_close(motion[:, 33:], last[:, -12:])


def test_short_clip_left_pads_with_the_first_embedding(small_net):
    mels, ref = torch.randn(1, 10, 1, 80, 16), torch.randn(1, 6)
    noise = RecordingNoise()
    with torch.no_grad():
        motion = small_net.generate_motion(mels, ref, 0, noise)
        emb = small_net.embed(mels[0, 1:])[None]  # 1 x 9 x C
        padded = torch.cat([emb[:, :1].expand(1, 23, -1), emb], dim=1)
        expected = small_net.decode(noise(0), 0, ref, padded)[:, -9:]
    torch.testing.assert_close(motion[:, 1:], expected)


def test_pose_style_changes_the_motion_and_is_checked(small_net):
    mels, ref = torch.randn(1, 20, 1, 80, 16), torch.zeros(1, 6)
    with torch.no_grad():
        a = small_net.predict_motion(mels, ref, 0, RecordingNoise())
        b = small_net.predict_motion(mels, ref, 45, RecordingNoise())
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pose_style"):
        small_net.predict_motion(mels, ref, 46, RecordingNoise())
    with pytest.raises(ValueError, match="one sequence"):
        small_net.predict_motion(mels.expand(2, -1, -1, -1, -1), ref.expand(2, -1), 0, RecordingNoise())


def test_golden_audio2pose(reference_dir):
    g = np.load(reference_dir / "sadtalker" / "golden" / "c_audio2pose.npz")
    net = PoseVAE.from_state_dict(standin_state(reference_dir, "audio2pose."), MAIN)

    def close(actual, expected):
        assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()

    with torch.no_grad():
        dec = net.decode(torch.from_numpy(g["dec_z"]), int(g["dec_class"]), torch.from_numpy(g["dec_ref6"]),
                         torch.from_numpy(g["dec_audio_emb"]))
        close(dec.numpy(), g["dec_pose_motion_pred"])
        for case in ("t30", "t45"):
            z = torch.from_numpy(g[f"{case}_z"])
            ref = torch.from_numpy(g[f"{case}_ref70"][:, 0, 64:70])
            pose = net.predict_motion(torch.from_numpy(g[f"{case}_indiv_mels"]), ref, int(g[f"{case}_class"]),
                                      lambda k, z=z: z[k]).numpy()
            close(pose, g[f"{case}_pose_pred"])
            close(smooth_pose(pose[0])[None], g[f"{case}_pose_pred_savgol"])


def test_strict_loading_accounts_for_unused_parts(small_net):
    state = dict(small_net.state_dict())
    del state["netD_motion.seq.3.bias"]
    with pytest.raises(CheckpointError, match="^x.safetensors: missing tensor 'netD_motion.seq.3.bias'"):
        PoseVAE.from_state_dict(state, "x.safetensors")
    state = dict(small_net.state_dict())
    state["netG.encoder.linear_means.weight"] = torch.zeros(64, 7)
    with pytest.raises(CheckpointError, match="'netG.encoder.linear_means.weight' has shape"):
        PoseVAE.from_state_dict(state, "x.safetensors")
