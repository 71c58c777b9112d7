"""PoseVAE (ARCHITECTURE §5): audio -> head-pose motion (3 angles + 3 translations per frame).

A conditional VAE whose decoder turns (noise z, pose-style class, first-frame pose, 32 audio embeddings)
into 32 frames of pose motion. At inference only the audio encoder and `netG.decoder` run;
`netG.encoder` (training-time posterior) and `netD_motion` (training-time discriminator) exist so that
strict loading of the official file accounts for every tensor.

Official weights: the `audio2pose.` block of `SadTalker_V0.0.2_*.safetensors`, or `['model']` of the
legacy `auido2pose_00140-model.pth`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .audio_encoder import AudioEncoder, AudioEncoderDims
from .resunet import ResUnet
from .statedict import load_strict, tensor_dim

PoseNoise = Callable[[int], torch.Tensor]  # block index k -> z (1, latent) of block k, in draw order


@dataclass(frozen=True)
class PoseVAEDims:
    encoder: AudioEncoderDims = field(default_factory=AudioEncoderDims)
    unet: tuple[int, int, int, int] = (32, 64, 128, 256)
    hidden: int = 128  # MLP hidden width (DECODER_LAYER_SIZES [128, 192])
    seq_len: int = 32  # frames per CVAE block
    latent: int = 64
    num_classes: int = 46  # pose styles
    pose_dim: int = 6  # 3 angles + 3 translations
    disc: tuple[int, int, int] = (256, 512, 1024)  # netD_motion widths

    @classmethod
    def small(cls) -> PoseVAEDims:
        """Narrow layers; same names, block length, latent size and number of pose styles."""
        return cls(encoder=AudioEncoderDims.small(), unet=(4, 8, 16, 32), hidden=16, disc=(8, 16, 32))

    @property
    def block_dim(self) -> int:
        return self.seq_len * self.pose_dim  # one block of pose values, flattened (192)


class EncoderWrapper(nn.Module):
    """Wraps the audio encoder so its keys read `audio_encoder.audio_encoder.*` like the official file."""

    def __init__(self, dims: AudioEncoderDims):
        super().__init__()
        self.audio_encoder = AudioEncoder(dims)


def _mlp(sizes: list[int], final: nn.Module | None) -> nn.Sequential:
    """Linear layers `L0, L1, ...` with ReLU between them, optional final activation."""
    mlp = nn.Sequential()
    for i, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mlp.add_module(f"L{i}", nn.Linear(cin, cout))
        if i < len(sizes) - 2:
            mlp.add_module(f"A{i}", nn.ReLU())
    if final is not None:
        mlp.add_module("out", final)
    return mlp


class PoseDecoder(nn.Module):
    """`netG.decoder`: (z, class, first-frame pose, audio embeddings) -> pose motion of one block."""

    def __init__(self, d: PoseVAEDims):
        super().__init__()
        self.resunet = ResUnet(d.unet)
        self.MLP = _mlp([d.pose_dim + d.latent + d.block_dim, d.hidden, d.block_dim], nn.Sigmoid())
        self.pose_linear = nn.Linear(d.pose_dim, d.pose_dim)
        self.linear_audio = nn.Linear(d.encoder.out_dim, d.pose_dim)
        self.classbias = nn.Parameter(torch.zeros(d.num_classes, d.latent))

    def forward(self, z: torch.Tensor, class_id: torch.Tensor, ref: torch.Tensor,
                audio_emb: torch.Tensor) -> torch.Tensor:
        """z (B, 64), class_id (B,) int64, ref (B, 6), audio_emb (B, L, C) -> motion (B, L, 6)."""
        b, length, _ = audio_emb.shape
        audio = self.linear_audio(audio_emb).reshape(b, -1)  # B x L*6
        z = z + self.classbias[class_id]
        x = self.MLP(torch.cat([ref, z, audio], dim=1))  # B x L*6, in (0, 1)
        x = self.resunet(x.reshape(b, 1, length, -1))  # B x 1 x L x 6
        return self.pose_linear(x.reshape(b, length, -1))


class PoseEncoder(nn.Module):
    """`netG.encoder`: the training-time posterior q(z | motion, audio). Never executed."""

    def __init__(self, d: PoseVAEDims):
        super().__init__()
        self.resunet = ResUnet(d.unet)
        self.MLP = _mlp([2 * d.block_dim + d.latent + d.pose_dim, d.hidden], nn.ReLU())
        self.linear_means = nn.Linear(d.hidden, d.latent)
        self.linear_logvar = nn.Linear(d.hidden, d.latent)
        self.linear_audio = nn.Linear(d.encoder.out_dim, d.pose_dim)
        self.classbias = nn.Parameter(torch.zeros(d.num_classes, d.latent))


class CVAE(nn.Module):
    def __init__(self, d: PoseVAEDims):
        super().__init__()
        self.encoder = PoseEncoder(d)
        self.decoder = PoseDecoder(d)


class ConvNormRelu1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, padding=1, bias=False)
        self.norm = nn.BatchNorm1d(cout)
        self.act = nn.ReLU()


class MotionDiscriminator(nn.Module):
    """`netD_motion`: training-time 1-D conv discriminator over pose sequences. Never executed."""

    def __init__(self, d: PoseVAEDims):
        super().__init__()
        c1, c2, c3 = d.disc
        self.seq = nn.Sequential(
            ConvNormRelu1d(d.pose_dim, c1, 4, 2),
            ConvNormRelu1d(c1, c2, 4, 2),
            ConvNormRelu1d(c2, c3, 3, 1),
            nn.Conv1d(c3, 1, 3, 1, 1),
        )


class PoseVAE(nn.Module):
    def __init__(self, dims: PoseVAEDims = PoseVAEDims()):
        super().__init__()
        self.dims = dims
        self.audio_encoder = EncoderWrapper(dims.encoder)
        self.netG = CVAE(dims)
        self.netD_motion = MotionDiscriminator(dims)

    def embed(self, mels: torch.Tensor) -> torch.Tensor:
        """(N, 1, 80, 16) mel windows -> (N, C) audio embeddings."""
        return self.audio_encoder.audio_encoder.embed(mels)

    def decode(self, z: torch.Tensor, pose_style: int | torch.Tensor, ref_pose: torch.Tensor,
               audio_emb: torch.Tensor) -> torch.Tensor:
        """z (B, 64), pose_style (0..45), ref_pose (B, 6), audio_emb (B, 32, C) -> motion (B, 32, 6)."""
        class_id = torch.as_tensor(pose_style, dtype=torch.long, device=z.device).reshape(-1)
        class_id = class_id.expand(z.shape[0])
        return self.netG.decoder(z, class_id, ref_pose, audio_emb)

    def predict_motion(self, indiv_mels: torch.Tensor, ref_pose: torch.Tensor, pose_style: int,
                       noise: PoseNoise) -> torch.Tensor:
        """indiv_mels (1, T, 1, 80, 16), ref_pose (1, 6) -> pose (1, T, 6) = ref_pose + motion."""
        return ref_pose[:, None, :] + self.generate_motion(indiv_mels, ref_pose, pose_style, noise)

    def generate_motion(self, indiv_mels: torch.Tensor, ref_pose: torch.Tensor, pose_style: int,
                        noise: PoseNoise) -> torch.Tensor:
        """(1, T, 6) motion relative to ref_pose (§5.5); frame 0 has motion 0.

        Frames 1..T-1 are cut into blocks of 32, each decoded with its own z = noise(k). A last partial
        block of r frames is decoded from the last 32 windows (left-padded with the first embedding
        when fewer than 32 exist) and keeps its last r motions.

        Batch 1 only. (The reference flattens a (B, T) batch time-major before the encoder and reshapes
        the result batch-major, which mixes batch items when B > 1; with B = 1 both orders agree.)
        """
        if indiv_mels.shape[0] != 1 or ref_pose.shape[0] != 1:
            raise ValueError(f"predict_motion takes one sequence, got batch {indiv_mels.shape[0]}")
        if not 0 <= int(pose_style) < self.dims.num_classes:
            raise ValueError(f"pose_style must be in 0..{self.dims.num_classes - 1}, got {pose_style}")
        seq_len = self.dims.seq_len
        emb = self.embed(indiv_mels[0, 1:])[None]  # 1 x n x C, n = T - 1
        n = emb.shape[1]
        blocks = [torch.zeros(1, 1, self.dims.pose_dim, dtype=ref_pose.dtype, device=ref_pose.device)]
        for k in range(n // seq_len):
            blocks.append(self._decode_block(k, emb[:, k * seq_len:(k + 1) * seq_len], ref_pose,
                                             pose_style, noise))
        rest = n % seq_len
        if rest:
            last = emb[:, -seq_len:]
            if last.shape[1] < seq_len:  # fewer than 32 windows in all: repeat the first embedding
                pad = last[:, :1].expand(1, seq_len - last.shape[1], last.shape[2])
                last = torch.cat([pad, last], dim=1)
            blocks.append(self._decode_block(n // seq_len, last, ref_pose, pose_style, noise)[:, -rest:])
        return torch.cat(blocks, dim=1)

    def _decode_block(self, k: int, emb: torch.Tensor, ref_pose: torch.Tensor, pose_style: int,
                      noise: PoseNoise) -> torch.Tensor:
        z = noise(k).to(device=ref_pose.device, dtype=ref_pose.dtype).reshape(1, self.dims.latent)
        return self.decode(z, pose_style, ref_pose, emb)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> PoseVAE:
        """Build with the dims the tensor shapes imply and load strictly (CheckpointError otherwise)."""
        def dim(name: str, axis: int = 0) -> int:
            return tensor_dim(state, name, source, axis)

        dec = "netG.decoder."
        pose_dim = dim(dec + "pose_linear.weight")
        dims = PoseVAEDims(
            encoder=AudioEncoderDims.from_state_dict(state, "audio_encoder.audio_encoder.", source),
            unet=tuple(dim(f"{dec}resunet.{m}.weight") for m in (  # type: ignore[arg-type]
                "input_layer.0", "residual_conv_1.conv_block.2", "residual_conv_2.conv_block.2",
                "bridge.conv_block.2")),
            hidden=dim(dec + "MLP.L0.weight"),
            seq_len=dim(dec + "MLP.L1.weight") // pose_dim,
            latent=dim(dec + "classbias", 1),
            num_classes=dim(dec + "classbias"),
            pose_dim=pose_dim,
            disc=tuple(dim(f"netD_motion.seq.{i}.conv.weight") for i in range(3)),  # type: ignore[arg-type]
        )
        net = cls(dims)
        load_strict(net, state, source)
        return net.eval()
