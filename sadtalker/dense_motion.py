"""Dense motion network (`generator.dense_motion_network.*`, ARCHITECTURE §7.5 steps 1-9).

Estimates the 3-D flow that warps the source feature volume to the driving pose: one candidate
motion per keypoint (plus identity), a 3-D hourglass that looks at the source features deformed by
each candidate and at keypoint heatmaps, a softmax mask choosing among the candidates per voxel, and
an occlusion map telling the decoder which regions it must inpaint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock3d, UpBlock3d, coordinate_grid

KP_VARIANCE = 0.01
MASK_THRESHOLD = 1e-3


@dataclass(frozen=True)
class DenseMotionDims:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    num_kp: int = 15
    feature_channel: int = 32
    compress: int = 4
    reshape_depth: int = 16

    @property
    def in_features(self) -> int:
        return (self.num_kp + 1) * (self.compress + 1)

    @classmethod
    def small(cls) -> DenseMotionDims:
        return cls(block_expansion=4, max_features=32, feature_channel=4, compress=1, reshape_depth=2)


class Hourglass3d(nn.Module):
    """3-D U-Net: DownBlock3d encoder, UpBlock3d decoder with [upsampled, skip] concatenation."""

    def __init__(self, dims: DenseMotionDims):
        super().__init__()
        be, mf, n, cin = dims.block_expansion, dims.max_features, dims.num_blocks, dims.in_features
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList(
            DownBlock3d(cin if i == 0 else min(mf, be * 2**i), min(mf, be * 2 ** (i + 1))) for i in range(n))
        self.decoder = nn.Module()
        ups = []
        for i in reversed(range(n)):
            width = (1 if i == n - 1 else 2) * min(mf, be * 2 ** (i + 1))
            ups.append(UpBlock3d(width, min(mf, be * 2**i)))
        self.decoder.up_blocks = nn.ModuleList(ups)
        self.out_filters = be + cin
        self.decoder.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for down in self.encoder.down_blocks:
            skips.append(down(skips[-1]))
        out = skips.pop()
        for up in self.decoder.up_blocks:
            out = torch.cat([up(out), skips.pop()], dim=1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))  # N x out_filters x D x H x W


def keypoint_gaussians(kp: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(N,K,3) keypoints on a (D,H,W,3) grid -> (N,K,D,H,W) exp(-|p - kp|^2 / (2 * 0.01))."""
    diff = grid.unsqueeze(0).unsqueeze(0) - kp.view(*kp.shape[:2], 1, 1, 1, 3)  # N x K x D x H x W x 3
    return torch.exp(-0.5 * (diff**2).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(nn.Module):
    """Source features + source/driving keypoints -> deformation (N,D,H,W,3), occlusion (N,1,H,W)."""

    def __init__(self, dims: DenseMotionDims | None = None):
        super().__init__()
        self.dims = d = dims or DenseMotionDims()
        self.hourglass = Hourglass3d(d)
        self.mask = nn.Conv3d(self.hourglass.out_filters, d.num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(d.feature_channel, d.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(d.compress)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters * d.reshape_depth, 1, kernel_size=7, padding=3)

    def compress_features(self, feature: torch.Tensor) -> torch.Tensor:
        """(N,32,D,H,W) source feature volume -> (N,4,D,H,W); depends on the source only."""
        return F.relu(self.norm(self.compress(feature)))

    def forward(self, compressed: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        # fp32 islands (precision.py): the grid, candidate motions, heatmaps, mask softmax and deformation;
        # only the hourglass and the two convolutions on its output run in the network's dtype
        compute = compressed.dtype
        compressed, kp_driving, kp_source = compressed.float(), kp_driving.float(), kp_source.float()
        n, c, d, h, w = compressed.shape
        k = self.dims.num_kp + 1
        grid = coordinate_grid((d, h, w), compressed)  # D x H x W x 3
        to_source = grid - kp_driving.view(n, -1, 1, 1, 1, 3) + kp_source.view(n, -1, 1, 1, 1, 3)
        motions = torch.cat([grid.expand(n, 1, d, h, w, 3), to_source], dim=1)  # N x K+1 x D x H x W x 3

        repeated = compressed.unsqueeze(1).expand(n, k, c, d, h, w).reshape(n * k, c, d, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(n * k, d, h, w, 3), align_corners=False)
        deformed = deformed.view(n, k, c, d, h, w)  # N x K+1 x 4 x D x H x W

        heat = keypoint_gaussians(kp_driving, grid) - keypoint_gaussians(kp_source, grid)  # N x K x D x H x W
        heat = torch.cat([heat.new_zeros(n, 1, d, h, w), heat], dim=1).unsqueeze(2)  # N x K+1 x 1 x D x H x W

        hourglass_in = torch.cat([heat, deformed], dim=2).view(n, -1, d, h, w)  # N x (K+1)*5 x D x H x W
        prediction = self.hourglass(hourglass_in.to(compute))  # N x 112 x D x H x W

        mask = F.softmax(self.mask(prediction).float(), dim=1)  # N x K+1 x D x H x W
        kept = torch.where(mask < MASK_THRESHOLD, torch.zeros_like(mask), mask).unsqueeze(2)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * kept).sum(dim=1)  # N x 3 x D x H x W
        deformation = deformation.permute(0, 2, 3, 4, 1)  # N x D x H x W x 3

        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(n, -1, h, w)).float())  # N x 1 x H x W
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion}
