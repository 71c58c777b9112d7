"""Mapping network (`mapping.*` of the mapping_*.pth.tar files, ARCHITECTURE §7.3).

Turns a 27-frame window of 3DMM motion coefficients into the face renderer's motion parameters:
head-pose bin logits (yaw, pitch, roll; 66 bins of 3 degrees), a translation and per-keypoint
expression offsets. The 70-channel net serves crop/extcrop/resize, the 73-channel one full/extfull
(the source crop parameters appended).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .statedict import count_indexed, load_strict, require


@dataclass(frozen=True)
class MappingDims:
    coeff_nc: int = 70
    descriptor_nc: int = 1024
    layers: int = 3
    num_kp: int = 15
    num_bins: int = 66

    @classmethod
    def small(cls, coeff_nc: int = 70) -> MappingDims:
        return cls(coeff_nc=coeff_nc, descriptor_nc=128)


class MappingNet(nn.Module):
    """(N, C, 27) coefficient windows -> dict yaw, pitch, roll (N,66), t (N,3), exp (N,3*num_kp)."""

    def __init__(self, dims: MappingDims | None = None):
        super().__init__()
        self.dims = d = dims or MappingDims()
        self.first = nn.Sequential(nn.Conv1d(d.coeff_nc, d.descriptor_nc, kernel_size=7, bias=True))
        for i in range(d.layers):
            # index 0 is the LeakyReLU(0.1) of the official Sequential; only index 1 holds weights
            conv = nn.Conv1d(d.descriptor_nc, d.descriptor_nc, kernel_size=3, dilation=3)
            self.add_module(f"encoder{i}", nn.Sequential(nn.LeakyReLU(0.1), conv))
        self.fc_roll = nn.Linear(d.descriptor_nc, d.num_bins)
        self.fc_pitch = nn.Linear(d.descriptor_nc, d.num_bins)
        self.fc_yaw = nn.Linear(d.descriptor_nc, d.num_bins)
        self.fc_t = nn.Linear(d.descriptor_nc, 3)
        self.fc_exp = nn.Linear(d.descriptor_nc, 3 * d.num_kp)

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.first(windows)  # N x 1024 x 21
        for i in range(self.dims.layers):
            out = getattr(self, f"encoder{i}")(out) + out[:, :, 3:-3]  # length shrinks by 6
        out = F.adaptive_avg_pool1d(out, 1).flatten(1)  # N x 1024
        return {"yaw": self.fc_yaw(out), "pitch": self.fc_pitch(out), "roll": self.fc_roll(out),
                "t": self.fc_t(out), "exp": self.fc_exp(out)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> MappingNet:
        first = require(state, "first.0.weight", source)
        dims = MappingDims(
            coeff_nc=first.shape[1],
            descriptor_nc=first.shape[0],
            layers=count_indexed(state, "encoder"),
            num_kp=require(state, "fc_exp.weight", source).shape[0] // 3,
            num_bins=require(state, "fc_yaw.weight", source).shape[0],
        )
        net = cls(dims)
        load_strict(net, state, source)
        return net
