"""ParseNet: 19-class face parsing used for the GFPGAN paste-back mask (SPEC §4).

Names are the official flat keys (`encoder.1.conv1.conv2d.weight`, `body.0.conv2.norm.norm.running_var`,
`out_mask_conv.conv2d.weight`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..statedict import tensor_shape
from .constants import PARSE_COLORMAP
from .weights import build_and_load

DOWN_STEPS = 4  # 512 -> 32 px


@dataclass(frozen=True)
class ParseNetDims:
    base: int = 64
    max_channels: int = 256
    res_depth: int = 10
    classes: int = 19

    @classmethod
    def small(cls) -> ParseNetDims:
        return cls(base=8, max_channels=32)


class _BN(nn.Module):
    """Holds the BatchNorm as `.norm` (the official key is `norm.norm.*`)."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvLayer(nn.Module):
    """[nearest ×2] -> reflection pad 1 -> conv3×3 (stride 2 for 'down') -> [BN] -> [LeakyReLU 0.2]."""

    def __init__(self, cin: int, cout: int, scale: str = "none", bn: bool = False, act: bool = False):
        super().__init__()
        self.scale, self.act = scale, act
        self.conv2d = nn.Conv2d(cin, cout, 3, 2 if scale == "down" else 1, bias=not bn)
        self.norm = _BN(cout) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        if self.norm is not None:
            x = self.norm(x)
        return F.leaky_relu(x, 0.2) if self.act else x


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, scale: str = "none"):
        super().__init__()
        self.shortcut_func = None if scale == "none" and cin == cout else ConvLayer(cin, cout, scale)
        self.conv1 = ConvLayer(cin, cout, "up" if scale == "up" else "none", bn=True, act=True)
        self.conv2 = ConvLayer(cout, cout, "down" if scale == "down" else "none", bn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    def __init__(self, dims: ParseNetDims = ParseNetDims()):
        super().__init__()
        self.dims = dims
        clip = lambda c: min(c, dims.max_channels)  # noqa: E731
        head = dims.base
        encoder: list[nn.Module] = [ConvLayer(3, head)]
        for _ in range(DOWN_STEPS):
            encoder.append(ResidualBlock(clip(head), clip(head * 2), "down"))
            head *= 2
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*(ResidualBlock(clip(head), clip(head)) for _ in range(dims.res_depth)))
        decoder = []
        for _ in range(DOWN_STEPS):
            decoder.append(ResidualBlock(clip(head), clip(head // 2), "up"))
            head //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_img_conv = ConvLayer(clip(head), 3)  # present in the file; its output is discarded
        self.out_mask_conv = ConvLayer(clip(head), dims.classes)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> ParseNet:
        depth = len({k.split(".")[1] for k in state if k.startswith("body.")})
        dims = ParseNetDims(base=tensor_shape(state, "encoder.0.conv2d.weight", source)[0],
                            max_channels=tensor_shape(state, "body.0.conv1.conv2d.weight", source)[0],
                            res_depth=max(depth, 1),
                            classes=tensor_shape(state, "out_mask_conv.conv2d.weight", source)[0])
        return build_and_load(lambda: cls(dims), state, source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N,3,H,W) RGB in [-1,1], H and W divisible by 16 -> mask logits (N,19,H,W)."""
        feat = self.encoder(x)
        return self.out_mask_conv(self.decoder(feat + self.body(feat)))


def parse_input(faces_bgr: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(N,512,512,3) uint8 BGR -> (N,3,512,512) RGB, float32 /255, (x-0.5)/0.5 (the paste-back's input)."""
    x = faces_bgr.astype(np.float32) / np.float32(255.0)
    x = torch.from_numpy(np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2))).to(device)
    return ((x - 0.5) / 0.5).to(dtype)


def labels_to_mask(labels: np.ndarray) -> np.ndarray:
    """(…,H,W) class labels -> float64 mask values 0/255 (SPEC §4 colour map)."""
    return PARSE_COLORMAP[labels]
