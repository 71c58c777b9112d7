"""The small residual U-Net that refines the CVAE's pose sequence (ARCHITECTURE §5.3).

(B, 1, 32, 6) = (batch, channel, time, pose) -> (B, 1, 32, 6) in (0, 1). Down/up-sampling acts on time
only; the 6 pose columns keep their width throughout.
"""

from __future__ import annotations

import torch
from torch import nn

TIME_STRIDE = (2, 1)  # halve time, keep the pose axis


class ResidualConv(nn.Module):
    """Pre-activation residual block; keys `conv_block.{0:BN,2:conv,3:BN,5:conv}`, `conv_skip.{0:conv,1:BN}`."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int] = 1):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(),
            nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class Upsample(nn.Module):
    """Transposed conv doubling time; key `upsample`."""

    def __init__(self, channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(channels, channels, TIME_STRIDE, TIME_STRIDE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class ResUnet(nn.Module):
    def __init__(self, channels: tuple[int, int, int, int] = (32, 64, 128, 256)):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.input_layer = nn.Sequential(
            nn.Conv2d(1, c1, 3, 1, 1), nn.BatchNorm2d(c1), nn.ReLU(), nn.Conv2d(c1, c1, 3, 1, 1))
        self.input_skip = nn.Sequential(nn.Conv2d(1, c1, 3, 1, 1))
        self.residual_conv_1 = ResidualConv(c1, c2, TIME_STRIDE)
        self.residual_conv_2 = ResidualConv(c2, c3, TIME_STRIDE)
        self.bridge = ResidualConv(c3, c4, TIME_STRIDE)
        self.upsample_1 = Upsample(c4)
        self.up_residual_conv1 = ResidualConv(c4 + c3, c3)
        self.upsample_2 = Upsample(c3)
        self.up_residual_conv2 = ResidualConv(c3 + c2, c2)
        self.upsample_3 = Upsample(c2)
        self.up_residual_conv3 = ResidualConv(c2 + c1, c1)
        self.output_layer = nn.Sequential(nn.Conv2d(c1, 1, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, L, P) -> (B, 1, L, P); L divisible by 8."""
        x1 = self.input_layer(x) + self.input_skip(x)  # B x c1 x L x P
        x2 = self.residual_conv_1(x1)  # B x c2 x L/2 x P
        x3 = self.residual_conv_2(x2)  # B x c3 x L/4 x P
        x4 = self.bridge(x3)  # B x c4 x L/8 x P
        x5 = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], dim=1))  # B x c3 x L/4 x P
        x6 = self.up_residual_conv2(torch.cat([self.upsample_2(x5), x2], dim=1))  # B x c2 x L/2 x P
        x7 = self.up_residual_conv3(torch.cat([self.upsample_3(x6), x1], dim=1))  # B x c1 x L x P
        return self.output_layer(x7)
