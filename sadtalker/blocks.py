"""Building blocks shared by the face-renderer networks (ARCHITECTURE §7.1).

Every block keeps the official sub-module names (`conv`, `norm`, `conv1`, ...), so a network's
`state_dict()` lists exactly the tensor names of the official checkpoint files. BatchNorm layers are
plain `nn.BatchNorm2d/3d` (the original synchronized BN is identical in eval mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DownBlock2d(nn.Module):
    """conv3x3 -> BN -> ReLU -> 2x2 average pool (halves H and W)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class DownBlock3d(nn.Module):
    """conv3x3x3 -> BN3d -> ReLU -> average pool (1,2,2) (depth kept)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))
        n, c, d, h, w = x.shape
        # a (1,2,2) 3-D pool is a 2x2 pool of every depth slice; the 2-D kernel also exists for bfloat16 on CPU
        return F.avg_pool2d(x.reshape(n, c * d, h, w), kernel_size=2).view(n, c, d, h // 2, w // 2)


class UpBlock3d(nn.Module):
    """nearest upsample (1,2,2) -> conv3x3x3 -> BN3d -> ReLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2))  # nearest
        return F.relu(self.norm(self.conv(x)))


class SameBlock2d(nn.Module):
    """conv -> BN -> ReLU (or LeakyReLU with torch's default slope 0.01); spatial size kept."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, 0.01) if self.lrelu else F.relu(x)


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv(ReLU(BN(conv(ReLU(BN(x))))))."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(features)
        self.norm2 = nn.BatchNorm3d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def coordinate_grid(spatial: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """(D,H,W,3) grid of (x, y, z) in [-1, 1] with -1/+1 at the first/last voxel centre.

    x runs along W, y along H, z along D (the align_corners=True convention of the keypoints).
    """
    d, h, w = spatial
    axes = []
    for n in (w, h, d):
        r = torch.arange(n, dtype=like.dtype, device=like.device)
        axes.append(2 * (r / (n - 1)) - 1)
    x, y, z = axes
    zz = z.view(-1, 1, 1).expand(d, h, w)
    yy = y.view(1, -1, 1).expand(d, h, w)
    xx = x.view(1, 1, -1).expand(d, h, w)
    return torch.stack([xx, yy, zz], dim=-1)  # D x H x W x 3
