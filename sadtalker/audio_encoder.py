"""The wav2lip-style mel-window encoder shared by ExpNet and PoseVAE (ARCHITECTURE §4).

(N, 1, 80, 16) normalised mel windows -> (N, 512) embeddings, 13 conv blocks with eval-mode BN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .statedict import tensor_dim

EMBED_CHUNK = 256  # mel windows per encoder call (~40 MB of float32 activations at full width)


@dataclass(frozen=True)
class AudioEncoderDims:
    """Channel widths of the five stages; the last one is the embedding size."""

    widths: tuple[int, int, int, int, int] = (32, 64, 128, 256, 512)

    @classmethod
    def small(cls) -> AudioEncoderDims:
        return cls(widths=(4, 8, 16, 32, 64))

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    @classmethod
    def from_state_dict(cls, state: Mapping[str, object], prefix: str, source: str) -> AudioEncoderDims:
        # the first block of each stage changes the width: blocks 0, 3, 6, 9, 11
        widths = tuple(tensor_dim(state, f"{prefix}{i}.conv_block.0.weight", source)
                       for i in (0, 3, 6, 9, 11))
        return cls(widths=widths)  # type: ignore[arg-type]


class ConvBlock(nn.Module):
    """conv2d -> BN -> (+ input) -> ReLU; keys `conv_block.0` (conv) and `conv_block.1` (BN)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int,
                 residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return torch.relu(out)


class AudioEncoder(nn.Sequential):
    """(N, 1, 80, 16) -> (N, C, 1, 1); keys `{i}.conv_block.*`, i = 0..12."""

    def __init__(self, dims: AudioEncoderDims = AudioEncoderDims()):
        c0, c1, c2, c3, c4 = dims.widths
        super().__init__(
            ConvBlock(1, c0, 3, 1, 1),  # 80 x 16
            ConvBlock(c0, c0, 3, 1, 1, residual=True),
            ConvBlock(c0, c0, 3, 1, 1, residual=True),
            ConvBlock(c0, c1, 3, (3, 1), 1),  # 27 x 16
            ConvBlock(c1, c1, 3, 1, 1, residual=True),
            ConvBlock(c1, c1, 3, 1, 1, residual=True),
            ConvBlock(c1, c2, 3, 3, 1),  # 9 x 6
            ConvBlock(c2, c2, 3, 1, 1, residual=True),
            ConvBlock(c2, c2, 3, 1, 1, residual=True),
            ConvBlock(c2, c3, 3, (3, 2), 1),  # 3 x 3
            ConvBlock(c3, c3, 3, 1, 1, residual=True),
            ConvBlock(c3, c4, 3, 1, 0),  # 1 x 1
            ConvBlock(c4, c4, 1, 1, 0),
        )

    def embed(self, mels: torch.Tensor) -> torch.Tensor:
        """(N, 1, 80, 16) -> (N, C), in chunks so memory stays flat for long clips."""
        chunks = mels.split(EMBED_CHUNK) or (mels,)  # an empty batch still gives (0, C)
        return torch.cat([self(chunk).flatten(1) for chunk in chunks])
