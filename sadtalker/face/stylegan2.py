"""The "clean" StyleGAN2 decoder of GFPGAN v1.4 with spatial feature transforms on half the channels (SPEC §5.2).

Names are the official keys under `stylegan_decoder.` (`style_conv1.modulated_conv.weight`, `style_convs.N.*`,
`to_rgbs.N.*`, `noises.noiseK`, `style_mlp.{1,3,..,15}.*`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DEMOD_EPS = 1e-8
NUM_MLP = 8


def decoder_channels(resolution: int, base: int) -> int:
    """Channels at a resolution: `base` up to 64 px, then halved per octave (512: 512/256/128/64 at 64..512)."""
    return base if resolution <= 64 else base * 64 // resolution


class ModulatedConv2d(nn.Module):
    """Per-sample weights W·s (s from the style), optionally demodulated; bilinear ×2 before the conv if up."""

    def __init__(self, cin: int, cout: int, k: int, style_dim: int, demodulate: bool, upsample: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, cout, cin, k, k))
        self.modulation = nn.Linear(style_dim, cin)
        self.demodulate, self.upsample = demodulate, upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, cin, _, _ = x.shape
        _, cout, _, k, _ = self.weight.shape
        w = self.weight * self.modulation(style).view(n, 1, cin, 1, 1)  # N x Cout x Cin x k x k
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + DEMOD_EPS).view(n, cout, 1, 1, 1)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h, wd = x.shape[2:]
        # one grouped conv: the batch becomes groups, each sample with its own weights
        out = F.conv2d(x.reshape(1, n * cin, h, wd), w.reshape(n * cout, cin, k, k), padding=k // 2, groups=n)
        return out.view(n, cout, *out.shape[2:])


class StyleConv(nn.Module):
    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, style_dim, True, upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * 2**0.5
        out = out + self.weight * noise
        return F.leaky_relu(out + self.bias, 0.2)


class ToRGB(nn.Module):
    def __init__(self, cin: int, style_dim: int):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, 3, 1, style_dim, False, False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out


class StyleGAN2Decoder(nn.Module):
    def __init__(self, out_size: int, style_dim: int, base_channels: int):
        super().__init__()
        self.log_size = int(math.log2(out_size))
        mlp: list[nn.Module] = [nn.Identity()]  # index 0 normalises the code; unused with latent input
        for _ in range(NUM_MLP):
            mlp += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)  # present in the file only: the input is already latent
        c4 = decoder_channels(4, base_channels)
        self.constant_input = nn.Module()
        self.constant_input.weight = nn.Parameter(torch.zeros(1, c4, 4, 4))
        self.style_conv1 = StyleConv(c4, c4, style_dim, upsample=False)
        self.to_rgb1 = ToRGB(c4, style_dim)
        self.style_convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i, r in enumerate(self.noise_resolutions()):
            self.noises.register_buffer(f"noise{i}", torch.zeros(1, 1, r, r))
        cin = c4
        for level in range(3, self.log_size + 1):
            cout = decoder_channels(2**level, base_channels)
            self.style_convs.append(StyleConv(cin, cout, style_dim, upsample=True))
            self.style_convs.append(StyleConv(cout, cout, style_dim, upsample=False))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout

    def noise_resolutions(self) -> list[int]:
        """Side of each StyleConv's noise map in call order: 4, 8, 8, 16, 16, ..., out, out."""
        return [2 ** ((i + 5) // 2) for i in range((self.log_size - 2) * 2 + 1)]

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(len(self.noise_resolutions()))]

    def forward(self, w: torch.Tensor, conditions: Sequence[torch.Tensor],
                noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """w (N,16,S) latents, conditions [scale0, shift0, ...] per level, noise per StyleConv -> (N,3,R,R)."""
        out = self.constant_input.weight.repeat(w.shape[0], 1, 1, 1)
        out = self.style_conv1(out, w[:, 0], noise[0])
        rgb = self.to_rgb1(out, w[:, 1], None)
        for t, to_rgb in enumerate(self.to_rgbs):
            out = self.style_convs[2 * t](out, w[:, 2 * t + 1], noise[2 * t + 1])
            half = out.shape[1] // 2  # SFT on the second half of the channels only
            sft = out[:, half:] * conditions[2 * t] + conditions[2 * t + 1]
            out = torch.cat([out[:, :half], sft], dim=1)
            out = self.style_convs[2 * t + 1](out, w[:, 2 * t + 2], noise[2 * t + 2])
            rgb = to_rgb(out, w[:, 2 * t + 3], rgb)
        return rgb
