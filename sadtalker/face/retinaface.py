"""RetinaFace with a ResNet-50 body: face boxes, scores and 5 landmarks per anchor (SPEC §2.2).

Names are the official state-dict keys after the `module.` prefix is stripped (`body.layer1.0.conv1.weight`,
`fpn.output1.0.weight`, `ssh1.conv3X3.0.weight`, `ClassHead.0.conv1x1.weight`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..statedict import tensor_shape
from .weights import build_and_load

RESNET50_BLOCKS = (3, 4, 6, 3)
ANCHORS_PER_CELL = 2


@dataclass(frozen=True)
class RetinaFaceDims:
    width: int = 64          # ResNet stem width; layer k has width·2^k bottleneck channels, ×4 outputs
    fpn_channels: int = 256

    @classmethod
    def small(cls) -> RetinaFaceDims:
        return cls(width=8, fpn_channels=32)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """conv (no bias) + BN, keys `0.weight`, `1.*`."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Bottleneck(nn.Module):
    """torchvision ResNet v1.5 bottleneck (stride in the 3×3 conv)."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50Body(nn.Module):
    """ResNet-50 without avgpool/fc; returns layer2, layer3, layer4 outputs (strides 8, 16, 32)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, blocks in enumerate(RESNET50_BLOCKS):
            planes = width * 2**i
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(cin, planes, 2 if (b == 0 and i > 0) else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


def _act(x: torch.Tensor, slope: float) -> torch.Tensor:
    return F.leaky_relu(x, slope) if slope else F.relu(x)


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], cout: int):
        super().__init__()
        self.slope = 0.1 if cout <= 64 else 0.0  # the reference's rule; 0 (plain ReLU) at the official 256
        self.output1, self.output2, self.output3 = (conv_bn(c, cout, 1) for c in in_channels)
        self.merge1 = conv_bn(cout, cout, 3)
        self.merge2 = conv_bn(cout, cout, 3)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = (_act(m(f), self.slope) for m, f in zip((self.output1, self.output2, self.output3), feats, strict=True))
        o2 = _act(self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest")), self.slope)
        o1 = _act(self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest")), self.slope)
        return [o1, o2, o3]


class SSH(nn.Module):
    """Context module: concat of a 3×3, a stacked "5×5" and a stacked "7×7" branch (C/2 + C/4 + C/4)."""

    def __init__(self, c: int):
        super().__init__()
        self.slope = 0.1 if c <= 64 else 0.0
        self.conv3X3 = conv_bn(c, c // 2, 3)
        self.conv5X5_1 = conv_bn(c, c // 4, 3)
        self.conv5X5_2 = conv_bn(c // 4, c // 4, 3)
        self.conv7X7_2 = conv_bn(c // 4, c // 4, 3)
        self.conv7x7_3 = conv_bn(c // 4, c // 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv3X3(x)
        t = _act(self.conv5X5_1(x), self.slope)
        b = self.conv5X5_2(t)
        c = self.conv7x7_3(_act(self.conv7X7_2(t), self.slope))
        return F.relu(torch.cat([a, b, c], dim=1))


class Head(nn.Module):
    def __init__(self, c: int, k: int):
        super().__init__()
        self.k = k
        self.conv1x1 = nn.Conv2d(c, ANCHORS_PER_CELL * k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(x).permute(0, 2, 3, 1)  # N x H x W x (2k)
        return y.reshape(y.shape[0], -1, self.k)  # N x (H·W·2) x k, order (row, col, anchor)


class RetinaFace(nn.Module):
    def __init__(self, dims: RetinaFaceDims = RetinaFaceDims()):
        super().__init__()
        self.dims = dims
        w, c = dims.width, dims.fpn_channels
        self.body = ResNet50Body(w)
        self.fpn = FPN([w * 8, w * 16, w * 32], c)
        self.ssh1, self.ssh2, self.ssh3 = SSH(c), SSH(c), SSH(c)
        self.ClassHead = nn.ModuleList(Head(c, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(c, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(c, 10) for _ in range(3))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> RetinaFace:
        dims = RetinaFaceDims(width=tensor_shape(state, "body.conv1.weight", source)[0],
                              fpn_channels=tensor_shape(state, "fpn.output1.0.weight", source)[0])
        return build_and_load(lambda: cls(dims), state, source)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N,3,H,W) float, BGR minus the mean -> loc (N,P,4), conf (N,P,2) softmaxed, landms (N,P,10)."""
        feats = self.fpn(self.body(x))
        feats = [m(f) for m, f in zip((self.ssh1, self.ssh2, self.ssh3), feats, strict=True)]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], dim=1)
        landms = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], dim=1)
        return loc, F.softmax(conf, dim=-1), landms
