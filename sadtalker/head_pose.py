"""Head-pose/expression estimator (`he_estimator.*`, ARCHITECTURE §7.7); legacy file only.

In face-vid2vid this network estimates pose and expression from a driving image. SadTalker replaces
it by the mapping network driven by audio coefficients, so inference never runs it; it exists so
that strict loading of the legacy `facevid2vid_00189-model.pth.tar` accounts for every tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .statedict import load_strict, require


@dataclass(frozen=True)
class HEEstimatorDims:
    block_expansion: int = 64
    num_bins: int = 66
    num_kp: int = 15
    image_channel: int = 3

    @classmethod
    def small(cls) -> HEEstimatorDims:
        return cls(block_expansion=8)


class ResBottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 bottleneck with BN; a 1x1 `skip` + `norm4` when it downsamples."""

    def __init__(self, features: int, stride: int):
        super().__init__()
        mid = features // 4
        self.conv1 = nn.Conv2d(features, mid, kernel_size=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.norm2 = nn.BatchNorm2d(mid)
        self.norm3 = nn.BatchNorm2d(features)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(features, features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        skip = self.norm4(self.skip(x)) if self.stride != 1 else x
        return F.relu(out + skip)


def _stage(name: str, features: int, count: int) -> nn.Sequential:
    stage = nn.Sequential()
    for i in range(count):
        stage.add_module(f"{name}_{i}", ResBottleneck(features, stride=1))
    return stage


class HEEstimator(nn.Module):
    """Image (N,3,S,S) -> dict yaw, pitch, roll (N,66), t (N,3), exp (N,45). Never used by inference."""

    def __init__(self, dims: HEEstimatorDims | None = None):
        super().__init__()
        self.dims = d = dims or HEEstimatorDims()
        be = d.block_expansion
        self.conv1 = nn.Conv2d(d.image_channel, be, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(be)
        self.conv2 = nn.Conv2d(be, 4 * be, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(4 * be)
        self.block1 = _stage("b1", 4 * be, 3)
        self.conv3 = nn.Conv2d(4 * be, 8 * be, kernel_size=1)
        self.norm3 = nn.BatchNorm2d(8 * be)
        self.block2 = ResBottleneck(8 * be, stride=2)
        self.block3 = _stage("b3", 8 * be, 3)
        self.conv4 = nn.Conv2d(8 * be, 16 * be, kernel_size=1)
        self.norm4 = nn.BatchNorm2d(16 * be)
        self.block4 = ResBottleneck(16 * be, stride=2)
        self.block5 = _stage("b5", 16 * be, 5)
        self.conv5 = nn.Conv2d(16 * be, 32 * be, kernel_size=1)
        self.norm5 = nn.BatchNorm2d(32 * be)
        self.block6 = ResBottleneck(32 * be, stride=2)
        self.block7 = _stage("b7", 32 * be, 2)
        self.fc_roll = nn.Linear(32 * be, d.num_bins)
        self.fc_pitch = nn.Linear(32 * be, d.num_bins)
        self.fc_yaw = nn.Linear(32 * be, d.num_bins)
        self.fc_t = nn.Linear(32 * be, 3)
        self.fc_exp = nn.Linear(32 * be, 3 * d.num_kp)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = F.max_pool2d(F.relu(self.norm1(self.conv1(image))), kernel_size=3, stride=2, padding=1)
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.block1(out)
        out = self.block2(F.relu(self.norm3(self.conv3(out))))
        out = self.block3(out)
        out = self.block4(F.relu(self.norm4(self.conv4(out))))
        out = self.block5(out)
        out = self.block6(F.relu(self.norm5(self.conv5(out))))
        out = self.block7(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # N x 2048
        # the reference returns fc_roll under "yaw" and fc_yaw under "roll"; kept
        return {"yaw": self.fc_roll(out), "pitch": self.fc_pitch(out), "roll": self.fc_yaw(out),
                "t": self.fc_t(out), "exp": self.fc_exp(out)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> HEEstimator:
        conv1 = require(state, "conv1.weight", source)
        dims = HEEstimatorDims(block_expansion=conv1.shape[0], image_channel=conv1.shape[1],
                               num_bins=require(state, "fc_yaw.weight", source).shape[0],
                               num_kp=require(state, "fc_exp.weight", source).shape[0] // 3)
        net = cls(dims)
        load_strict(net, state, source)
        return net
