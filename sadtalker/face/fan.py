"""AWing FAN: 4 stacked hourglasses with CoordConv, 98 WFLW landmark heatmaps + 1 boundary map (SPEC §3.2-3.3).

Names are the official keys under the file's `['state_dict']` (`conv1.conv.weight`, `m0.b1_4.conv1.weight`,
`top_m_0.*`, `conv_last0.*`, `bn_end0.*`, `l0.*`, `bl0.*`, `al0.*`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..statedict import tensor_shape
from .weights import build_and_load

HOURGLASS_DEPTH = 4
BOUNDARY_THRESHOLD = 0.05


@dataclass(frozen=True)
class FANDims:
    width: int = 64          # conv1 output
    mid: int = 128           # conv2/conv3 output
    features: int = 256      # hourglass channels
    num_landmarks: int = 98  # heatmaps; the network outputs one more (boundary)
    num_modules: int = 4

    @classmethod
    def small(cls) -> FANDims:
        return cls(width=8, mid=16, features=32)


def coord_channels(x: torch.Tensor, boundary: torch.Tensor | None) -> torch.Tensor:
    """Append xx (varies along height), yy (along width), rr and, with a boundary map, masked xx/yy."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=torch.float32) / (h - 1) * 2 - 1
    cols = torch.arange(w, device=x.device, dtype=torch.float32) / (w - 1) * 2 - 1
    xx = rows.view(1, 1, h, 1).expand(n, 1, h, w)
    yy = cols.view(1, 1, 1, w).expand(n, 1, h, w)
    rr = torch.sqrt(xx * xx + yy * yy)
    rr = rr / rr.max()
    extra = [xx, yy, rr]
    if boundary is not None:
        near = torch.clamp(boundary, 0.0, 1.0) > BOUNDARY_THRESHOLD
        extra += [torch.where(near, xx, torch.zeros_like(xx)), torch.where(near, yy, torch.zeros_like(yy))]
    return torch.cat([x] + [e.to(x.dtype) for e in extra], dim=1)


class CoordConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding)

    def forward(self, x: torch.Tensor, boundary: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(coord_channels(x, boundary))


class ConvBlock(nn.Module):
    """Pre-activation block: concat of out/2, out/4, out/4 branches plus the (projected) input."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout // 4, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout // 4)
        self.conv3 = nn.Conv2d(cout // 4, cout // 4, 3, 1, 1, bias=False)
        self.downsample = (nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False))
                           if cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat((o1, o2, o3), 1) + residual


class HourGlass(nn.Module):
    def __init__(self, c: int, first: bool, depth: int = HOURGLASS_DEPTH):
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(c + (3 if first else 5), c, 1)
        for level in range(depth, 0, -1):
            for branch in ("b1", "b2", "b3"):
                self.add_module(f"{branch}_{level}", ConvBlock(c, c))
        self.add_module("b2_plus_1", ConvBlock(c, c))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules["b2_plus_1"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, boundary: torch.Tensor | None) -> torch.Tensor:
        return self._level(self.depth, self.coordconv(x, boundary))


class FAN(nn.Module):
    def __init__(self, dims: FANDims = FANDims()):
        super().__init__()
        self.dims = dims
        d = dims
        self.conv1 = CoordConv(3 + 3, d.width, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(d.width)
        self.conv2 = ConvBlock(d.width, d.mid)
        self.conv3 = ConvBlock(d.mid, d.mid)
        self.conv4 = ConvBlock(d.mid, d.features)
        c, k = d.features, d.num_landmarks + 1
        for i in range(d.num_modules):
            self.add_module(f"m{i}", HourGlass(c, first=i == 0))
            self.add_module(f"top_m_{i}", ConvBlock(c, c))
            self.add_module(f"conv_last{i}", nn.Conv2d(c, c, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(c))
            self.add_module(f"l{i}", nn.Conv2d(c, k, 1))
            if i < d.num_modules - 1:
                self.add_module(f"bl{i}", nn.Conv2d(c, c, 1))
                self.add_module(f"al{i}", nn.Conv2d(k, c, 1))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> FAN:
        modules = sum(1 for k in state if k.startswith("l") and k[1:].split(".")[0].isdigit() and k.endswith("weight"))
        dims = FANDims(width=tensor_shape(state, "conv1.conv.weight", source)[0],
                       mid=tensor_shape(state, "conv2.downsample.2.weight", source)[0],
                       features=tensor_shape(state, "conv4.downsample.2.weight", source)[0],
                       num_landmarks=tensor_shape(state, "l0.weight", source)[0] - 1,
                       num_modules=max(modules, 1))
        return build_and_load(lambda: cls(dims), state, source)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (N,3,256,256) BGR in [0,1] -> per module (N,99,64,64); the last channel is the boundary map."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        previous = self.conv4(self.conv3(x))
        outputs: list[torch.Tensor] = []
        out = None
        for i in range(self.dims.num_modules):
            hg = self._modules[f"m{i}"](previous, None if out is None else out[:, -1:])
            ll = self._modules[f"top_m_{i}"](hg)
            ll = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](ll)))
            out = self._modules[f"l{i}"](ll)
            outputs.append(out)
            if i < self.dims.num_modules - 1:
                previous = previous + self._modules[f"bl{i}"](ll) + self._modules[f"al{i}"](out)
        return outputs
