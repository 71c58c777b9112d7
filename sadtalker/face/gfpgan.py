"""GFPGANv1Clean (GFPGAN v1.4 weights): U-Net encoder -> style codes + SFT conditions -> StyleGAN2 decoder.

SPEC §5. Names are the official keys under the file's `['params_ema']` (`conv_body_first.*`,
`conv_body_down.N.*`, `final_conv.*`, `final_linear.*`, `conv_body_up.N.*`, `condition_scale.N.{0,2}.*`,
`condition_shift.*`, `toRGB.N.*` (present in the file, not run), `stylegan_decoder.*`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..statedict import tensor_shape
from .stylegan2 import StyleGAN2Decoder
from .weights import build_and_load


@dataclass(frozen=True)
class GFPGANDims:
    out_size: int = 512
    style_dim: int = 512
    unet_channels: int = 256     # U-Net width up to 64 px, halved per octave above
    decoder_channels: int = 512  # StyleGAN2 width up to 64 px (channel multiplier 2)

    @classmethod
    def small(cls) -> GFPGANDims:
        return cls(style_dim=64, unet_channels=32, decoder_channels=64)

    def unet(self, resolution: int) -> int:
        return self.unet_channels if resolution <= 64 else self.unet_channels * 64 // resolution


class ResBlock(nn.Module):
    """conv3×3 + LReLU, bilinear resize (×0.5 or ×2), conv3×3 + LReLU, plus a 1×1 skip of the resized input."""

    def __init__(self, cin: int, cout: int, factor: float):
        super().__init__()
        self.factor = factor
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resize = lambda t: F.interpolate(t, scale_factor=self.factor, mode="bilinear", align_corners=False)  # noqa: E731
        out = F.leaky_relu(self.conv2(resize(F.leaky_relu(self.conv1(x), 0.2))), 0.2)
        return out + self.skip(resize(x))


def _condition(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1))


class GFPGANv1Clean(nn.Module):
    def __init__(self, dims: GFPGANDims = GFPGANDims()):
        super().__init__()
        self.dims = dims
        self.log_size = int(math.log2(dims.out_size))
        self.num_latents = self.log_size * 2 - 2
        self.conv_body_first = nn.Conv2d(3, dims.unet(dims.out_size), 1)
        cin = dims.unet(dims.out_size)
        self.conv_body_down = nn.ModuleList()
        for level in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(cin, dims.unet(2 ** (level - 1)), 0.5))
            cin = dims.unet(2 ** (level - 1))
        self.final_conv = nn.Conv2d(cin, dims.unet(4), 3, 1, 1)
        self.conv_body_up, self.toRGB = nn.ModuleList(), nn.ModuleList()
        self.condition_scale, self.condition_shift = nn.ModuleList(), nn.ModuleList()
        cin = dims.unet(4)
        for level in range(3, self.log_size + 1):
            cout = dims.unet(2**level)
            self.conv_body_up.append(ResBlock(cin, cout, 2.0))
            self.toRGB.append(nn.Conv2d(cout, 3, 1))  # in the file; not run (return_rgb False)
            self.condition_scale.append(_condition(cout))
            self.condition_shift.append(_condition(cout))
            cin = cout
        self.final_linear = nn.Linear(dims.unet(4) * 16, self.num_latents * dims.style_dim)
        self.stylegan_decoder = StyleGAN2Decoder(dims.out_size, dims.style_dim, dims.decoder_channels)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> GFPGANv1Clean:
        levels = len({k.split(".")[1] for k in state if k.startswith("conv_body_down.")})
        dims = GFPGANDims(out_size=2 ** (levels + 2),
                          style_dim=tensor_shape(state, "stylegan_decoder.style_conv1.modulated_conv.modulation.weight",
                                          source)[1],
                          unet_channels=tensor_shape(state, "final_conv.weight", source)[0],
                          decoder_channels=tensor_shape(state, "stylegan_decoder.constant_input.weight", source)[1])
        return build_and_load(lambda: cls(dims), state, source)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (N,3,512,512) RGB in [-1,1] -> style codes (N,16,S) and SFT conditions [scale0, shift0, ...]."""
        feat = F.leaky_relu(self.conv_body_first(x), 0.2)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
        w = self.final_linear(feat.reshape(feat.shape[0], -1)).view(feat.shape[0], -1, self.dims.style_dim)
        conditions = []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[i])
            conditions += [self.condition_scale[i](feat), self.condition_shift[i](feat)]
        return w, conditions

    def forward(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """x (N,3,512,512) in [-1,1] -> restored (N,3,512,512), unbounded.

        noise: one tensor per StyleConv (see `draw_noise`); None uses the stored `noises.*` buffers (the
        reference's `randomize_noise=False`).
        """
        w, conditions = self.encode(x)
        noise = self.stylegan_decoder.stored_noise() if noise is None else noise
        return self.stylegan_decoder(w, conditions, noise)

    def draw_noise(self, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Fresh N(0,1) noise as the reference's `randomize_noise=True` draws it for `batch` faces run one
        after another: face by face, StyleConv by StyleConv, (1,1,r,r) each, on the CPU generator."""
        p = next(self.parameters())
        per_face = [[torch.empty(1, 1, r, r).normal_(generator=generator)
                     for r in self.stylegan_decoder.noise_resolutions()] for _ in range(batch)]
        return [torch.cat(maps, dim=0).to(p.device, p.dtype) for maps in zip(*per_face, strict=True)]


def to_input(faces_bgr: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(N,512,512,3) uint8 BGR -> (N,3,512,512) RGB: /255 in float64, float32, (x-0.5)/0.5."""
    x = (faces_bgr / 255.0).astype(np.float32)[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    return ((x - 0.5) / 0.5).to(dtype)


def to_bgr_uint8(out: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) output -> (N,H,W,3) uint8 BGR: clamp [-1,1], (x+1)/2, ×255, round half to even."""
    x = out.detach().float().cpu().clamp(-1, 1)
    x = ((x + 1) / 2).numpy().transpose(0, 2, 3, 1)[..., ::-1]
    return (x * np.float32(255.0)).round().astype(np.uint8)
