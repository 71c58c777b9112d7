"""Canonical 3D keypoint detector (`kp_extractor.*`, ARCHITECTURE §7.2).

The paper's face renderer describes a face by 15 implicit 3D keypoints. This network finds the
*canonical* ones of the source image (identity only, no pose or expression): a 2-D encoder, a lift to
a (C, 16, H, W) feature volume, a 3-D decoder, and a soft-argmax of one heatmap per keypoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock2d, UpBlock3d, coordinate_grid
from .statedict import count_indexed, load_strict, require


@dataclass(frozen=True)
class KPDetectorDims:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    num_kp: int = 15
    image_channel: int = 3
    reshape_depth: int = 16
    temperature: float = 0.1
    scale_factor: float = 0.25

    @property
    def reshape_channel(self) -> int:
        return self.max_features * self.reshape_depth

    @classmethod
    def small(cls) -> KPDetectorDims:
        """Narrow channels and a depth-2 volume; same names and the same 15 keypoints."""
        return cls(block_expansion=4, max_features=32, reshape_depth=2)


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (sigma = (1/scale - 1)/2) then keep every (1/scale)-th pixel.

    The kernel is a registered buffer `weight` (C,1,k,k) because the official file stores it.
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        ax = torch.arange(size, dtype=torch.float64)
        g = torch.exp(-((ax - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = torch.outer(g, g)
        kernel = (kernel / kernel.sum()).float()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.pad = size // 2
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad, self.pad, self.pad))
        x = F.conv2d(x, self.weight, groups=x.shape[1])
        return x[:, :, :: self.step, :: self.step]


class KPHourglass(nn.Module):
    """2-D encoder -> 1x1 conv -> reshape to 3-D -> 3-D decoder (`predictor.*`)."""

    def __init__(self, dims: KPDetectorDims):
        super().__init__()
        be, mf, n = dims.block_expansion, dims.max_features, dims.num_blocks
        self.down_blocks = nn.Sequential()
        for i in range(n):
            cin = dims.image_channel if i == 0 else min(mf, be * 2**i)
            self.down_blocks.add_module(f"down{i}", DownBlock2d(cin, min(mf, be * 2 ** (i + 1))))
        cin = min(mf, be * 2**n)
        self.conv = nn.Conv2d(cin, dims.reshape_channel, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(n):
            cin = min(mf, be * 2 ** (n - i))
            self.up_blocks.add_module(f"up{i}", UpBlock3d(cin, min(mf, be * 2 ** (n - i - 1))))
        self.reshape_depth = dims.reshape_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.down_blocks(x))  # N x reshape_channel x h x w
        n, c, h, w = x.shape
        x = x.view(n, c // self.reshape_depth, self.reshape_depth, h, w)  # N x C' x 16 x h x w
        return self.up_blocks(x)


class KPDetector(nn.Module):
    """Image (N,3,S,S) in [0,1] -> canonical keypoints (N,num_kp,3) in (x,y,z) order."""

    def __init__(self, dims: KPDetectorDims | None = None):
        super().__init__()
        self.dims = dims or KPDetectorDims()
        self.predictor = KPHourglass(self.dims)
        self.kp = nn.Conv3d(self.dims.block_expansion, self.dims.num_kp, kernel_size=3, padding=1)
        self.down = AntiAliasDownsample(self.dims.image_channel, self.dims.scale_factor)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feature = self.predictor(self.down(image))
        logits = self.kp(feature)  # N x K x D x H x W
        n, k, d, h, w = logits.shape
        heatmap = F.softmax(logits.view(n, k, -1) / self.dims.temperature, dim=2)
        heatmap = heatmap.view(n, k, d, h, w, 1)  # N x K x D x H x W x 1
        grid = coordinate_grid((d, h, w), heatmap)
        return (heatmap * grid).sum(dim=(2, 3, 4))  # N x K x 3

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> KPDetector:
        first = require(state, "predictor.down_blocks.down0.conv.weight", source)
        n = count_indexed(state, "predictor.down_blocks.down")
        last = require(state, f"predictor.down_blocks.down{n - 1}.conv.weight", source)
        reshape = require(state, "predictor.conv.weight", source).shape[0]
        blur = require(state, "down.weight", source).shape[-1]
        dims = KPDetectorDims(
            block_expansion=first.shape[0] // 2,
            max_features=last.shape[0],
            num_blocks=n,
            num_kp=require(state, "kp.weight", source).shape[0],
            image_channel=first.shape[1],
            reshape_depth=max(1, reshape // last.shape[0]),
            scale_factor=1 / (2 * ((blur - 1) / 8) + 1) if blur > 1 else 1.0,
        )
        if math.isclose(dims.scale_factor, 0.25, rel_tol=1e-6):
            dims = KPDetectorDims(**{**dims.__dict__, "scale_factor": 0.25})
        net = cls(dims)
        load_strict(net, state, source)
        return net
