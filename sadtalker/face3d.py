"""ReconNet (ARCHITECTURE §6): the Deep3DFaceRecon regressor, a 224x224 aligned face crop -> the 257
coefficients of the 3DMM (identity 80, expression 64, texture 80, angles 3, lighting 27, translation 3).

A torchvision-layout ResNet-50 v1.5 (stride on the 3x3 conv) without its fc, then seven 1x1 conv heads.
Official weights: the `face_3drecon.` block of `SadTalker_V0.0.2_*.safetensors`, or `['net_recon']`
of the legacy `epoch_20.pth`; keys `backbone.*`, `final_layers.*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .statedict import load_strict, tensor_dim

EXPANSION = 4  # bottleneck output width / inner width
INPUT_SIZE = 224  # pixels


@dataclass(frozen=True)
class ReconNetDims:
    stem: int = 64
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # inner widths of layer1..4
    depths: tuple[int, int, int, int] = (3, 4, 6, 3)
    heads: tuple[int, ...] = (80, 64, 80, 3, 27, 2, 1)  # id, exp, tex, angles, gamma, txy, tz

    @classmethod
    def small(cls) -> ReconNetDims:
        """Narrow channels; same block counts (same names) and the same 257 outputs."""
        return cls(stem=8, widths=(8, 16, 32, 64))

    @property
    def features(self) -> int:
        return self.widths[-1] * EXPANSION


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, v1.5) -> 1x1 (x4), BN after each, residual, ReLU."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * EXPANSION
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + skip)


class ResNet50(nn.Module):
    """(N, 3, H, W) -> (N, 2048, 1, 1) pooled features."""

    def __init__(self, d: ReconNetDims):
        super().__init__()
        self.conv1 = nn.Conv2d(3, d.stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(d.stem)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = d.stem
        for i, (width, depth) in enumerate(zip(d.widths, d.depths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(depth):
                blocks.append(Bottleneck(cin, width, stride if j == 0 else 1))
                cin = width * EXPANSION
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))  # N x 64 x H/4 x W/4
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # N x 2048 x H/32 x W/32
        return self.avgpool(x)


class ReconNet(nn.Module):
    def __init__(self, dims: ReconNetDims = ReconNetDims()):
        super().__init__()
        self.dims = dims
        self.backbone = ResNet50(dims)
        self.final_layers = nn.ModuleList(nn.Conv2d(dims.features, n, 1) for n in dims.heads)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """img (N, 3, 224, 224) RGB in [0, 1], no mean/std normalisation -> coefficients (N, 257)."""
        feat = self.backbone(img)  # N x 2048 x 1 x 1
        return torch.cat([head(feat) for head in self.final_layers], dim=1).flatten(1)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> ReconNet:
        """Build with the dims the tensor shapes imply and load strictly (CheckpointError otherwise)."""
        heads = []
        while f"final_layers.{len(heads)}.weight" in state:
            heads.append(tensor_dim(state, f"final_layers.{len(heads)}.weight", source))
        dims = ReconNetDims(
            stem=tensor_dim(state, "backbone.conv1.weight", source),
            widths=tuple(tensor_dim(state, f"backbone.layer{i}.0.conv1.weight", source)  # type: ignore[arg-type]
                         for i in range(1, 5)),
            heads=tuple(heads) or ReconNetDims.heads,
        )
        net = cls(dims)
        load_strict(net, state, source)
        return net.eval()
