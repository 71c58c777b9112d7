"""ExpNet (ARCHITECTURE §4): per video frame, a mel window plus the reference expression and the blink
ratio -> 64 expression coefficients of the 3DMM. Frames are independent (no temporal coupling).

Official weights: the `audio2exp.` block of `SadTalker_V0.0.2_*.safetensors`, or `['model']` of the
legacy `auido2exp_00300-model.pth`; keys `audio_encoder.*`, `mapping1.*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .audio_encoder import AudioEncoder, AudioEncoderDims
from .statedict import load_strict, tensor_dim

EXP_DIM = 64  # expression coefficients of the 3DMM


@dataclass(frozen=True)
class ExpNetDims:
    encoder: AudioEncoderDims = field(default_factory=AudioEncoderDims)
    exp_dim: int = EXP_DIM

    @classmethod
    def small(cls) -> ExpNetDims:
        """Narrow encoder, same tensor names and the same 64 expression coefficients."""
        return cls(encoder=AudioEncoderDims.small())


class ExpNet(nn.Module):
    def __init__(self, dims: ExpNetDims = ExpNetDims()):
        super().__init__()
        self.dims = dims
        self.audio_encoder = AudioEncoder(dims.encoder)
        # input: [audio embedding, reference expression, blink ratio]
        self.mapping1 = nn.Linear(dims.encoder.out_dim + dims.exp_dim + 1, dims.exp_dim)

    def forward(self, mels: torch.Tensor, ref_exp: torch.Tensor, blink: torch.Tensor) -> torch.Tensor:
        """mels (N, 1, 80, 16), ref_exp (N, 64), blink (N, 1) -> expression (N, 64)."""
        return self.mapping1(torch.cat([self.audio_encoder.embed(mels), ref_exp, blink], dim=1))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> ExpNet:
        """Build with the dims the tensor shapes imply and load strictly (CheckpointError otherwise)."""
        dims = ExpNetDims(encoder=AudioEncoderDims.from_state_dict(state, "audio_encoder.", source),
                          exp_dim=tensor_dim(state, "mapping1.weight", source))
        net = cls(dims)
        load_strict(net, state, source)
        return net.eval()
