"""Occlusion-aware SPADE generator (`generator.*`, ARCHITECTURE §7.5-7.6).

The paper's face renderer: encodes the source image into a 3-D feature volume, warps it with the
dense motion implied by the source and driving keypoints, masks occluded regions, and decodes the
result with a SPADE decoder (the warped features are both the input and the segmentation map).
The source encoding depends on the source image only, so `encode_source` runs once per video and
`animate` once per frame batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d
from .dense_motion import DenseMotionDims, DenseMotionNetwork
from .statedict import count_indexed, load_strict, require


@dataclass(frozen=True)
class GeneratorDims:
    image_channel: int = 3
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6
    spade_hidden: int = 128
    motion: DenseMotionDims = DenseMotionDims()

    @classmethod
    def small(cls) -> GeneratorDims:
        """Narrow channels, a depth-2 feature volume; same names (block_expansion < encoded width keeps
        the learned shortcuts of up_0 and up_1)."""
        return cls(block_expansion=4, max_features=8, reshape_channel=4, reshape_depth=2, spade_hidden=16,
                   motion=DenseMotionDims.small())


class SpectralConv2d(nn.Conv2d):
    """Conv2d stored as a spectral-norm triple (weight_orig, weight_u, weight_v).

    Eval-mode spectral norm without power iteration: W = weight_orig / (u . (W_mat v)), computed once
    whenever a state dict is loaded (the names stay those of the official file).
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__(cin, cout, kernel_size, padding=padding, bias=bias)
        weight = self.weight.data
        del self.weight
        self.weight_orig = nn.Parameter(weight)
        u = F.normalize(torch.randn(cout), dim=0)
        v = F.normalize(torch.randn(weight[0].numel()), dim=0)
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_v", v)
        self.register_buffer("weight", torch.empty_like(weight), persistent=False)
        self.fold()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.fold())

    @torch.no_grad()
    def fold(self) -> None:
        w_mat = self.weight_orig.reshape(self.weight_orig.shape[0], -1)  # out x (in*kh*kw)
        sigma = torch.dot(self.weight_u, torch.mv(w_mat, self.weight_v))
        self.weight.copy_(self.weight_orig / sigma)


class SPADE(nn.Module):
    """InstanceNorm(x) * (1 + gamma(seg)) + beta(seg), seg resized to x by nearest interpolation (callers
    may pass it already at x's size: the decoder resizes it once per resolution, not in every block)."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        if seg.shape[2:] != x.shape[2:]:
            seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """Residual block with SPADE norms and spectral-norm convs (LeakyReLU 0.2)."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralConv2d(fin, fmid, kernel_size=3, padding=1)
        self.conv_1 = SpectralConv2d(fmid, fout, kernel_size=3, padding=1)
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmid, label_nc, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(fin, fout, kernel_size=1, bias=False)
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """(N,C,64,64) warped features -> (N,3,256,256) image in (0,1)."""

    def __init__(self, ic: int, oc: int, hidden: int, num_middle: int = 6):
        super().__init__()
        self.fc = nn.Conv2d(ic, 2 * ic, kernel_size=3, padding=1)
        self.num_middle = num_middle
        for i in range(num_middle):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, ic, hidden))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, ic, hidden)
        self.up_1 = SPADEResnetBlock(ic, oc, ic, hidden)
        self.conv_img = nn.Conv2d(oc, 3, kernel_size=3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature  # the conditioning map, resized (nearest) once for each resolution below
        x = self.fc(feature)
        for i in range(self.num_middle):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = F.interpolate(x, scale_factor=2)  # nearest x2
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        x = self.up_0(x, seg)
        x = F.interpolate(x, scale_factor=2)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        x = self.up_1(x, seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class SPADEGenerator(nn.Module):
    """source (N,3,S,S), kp_source, kp_driving (N,15,3) -> prediction (N,3,S,S), occlusion_map, mask."""

    def __init__(self, dims: GeneratorDims | None = None):
        super().__init__()
        self.dims = d = dims or GeneratorDims()
        be, mf = d.block_expansion, d.max_features
        self.first = SameBlock2d(d.image_channel, be, kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(mf, be * 2**i), min(mf, be * 2 ** (i + 1))) for i in range(d.num_down_blocks))
        encoded = min(mf, be * 2**d.num_down_blocks)
        self.second = nn.Conv2d(encoded, mf, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(d.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(d.reshape_channel))
        self.third = SameBlock2d(d.reshape_channel * d.reshape_depth, encoded, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(encoded, encoded, kernel_size=1)
        self.decoder = SPADEDecoder(encoded, be, d.spade_hidden)
        self.dense_motion_network = DenseMotionNetwork(d.motion)

    def encode_source(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,3,S,S) -> feature volume (N,32,16,S/4,S/4) and its compressed form for the motion net."""
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)  # N x 512 x h x w
        n, c, h, w = out.shape
        feature = out.view(n, self.dims.reshape_channel, c // self.dims.reshape_channel, h, w)  # N x 32 x 16 x h x w
        feature = self.resblocks_3d(feature)
        return feature, self.dense_motion_network.compress_features(feature)

    def animate(self, feature: torch.Tensor, compressed: torch.Tensor, kp_source: torch.Tensor,
                kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """Warp and decode encoded source(s) (N or 1 rows) for N driving keypoint sets."""
        n = kp_driving.shape[0]
        feature = feature.expand(n, *feature.shape[1:])
        motion = self.dense_motion_network(compressed.expand(n, *compressed.shape[1:]), kp_driving,
                                           kp_source.expand(n, -1, -1))
        # fp32 island: the deformation field and the warp of the feature volume (precision.py)
        warped = F.grid_sample(feature.float(), motion["deformation"], align_corners=False).to(feature.dtype)
        n, c, d, h, w = warped.shape  # N x 32 x 16 x h x w
        out = self.third(warped.reshape(n, c * d, h, w))  # N x 256 x h x w
        out = self.fourth(out) * motion["occlusion_map"].to(out.dtype)
        return {"prediction": self.decoder(out), "occlusion_map": motion["occlusion_map"],
                "mask": motion["mask"]}

    def forward(self, source: torch.Tensor, kp_source: torch.Tensor,
                kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        feature, compressed = self.encode_source(source)
        return self.animate(feature, compressed, kp_source, kp_driving)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], source: str) -> SPADEGenerator:
        first = require(state, "first.conv.weight", source)
        n_down = count_indexed(state, "down_blocks.")
        second = require(state, "second.weight", source)
        res = require(state, "resblocks_3d.3dr0.conv1.weight", source)
        hg = "dense_motion_network.hourglass.encoder.down_blocks."
        hg0 = require(state, hg + "0.conv.weight", source)
        n_hg = count_indexed(state, hg)
        mask = require(state, "dense_motion_network.mask.weight", source)
        compress = require(state, "dense_motion_network.compress.weight", source)
        motion = DenseMotionDims(
            block_expansion=hg0.shape[0] // 2,
            max_features=require(state, f"{hg}{n_hg - 1}.conv.weight", source).shape[0],
            num_blocks=n_hg, num_kp=mask.shape[0] - 1, feature_channel=compress.shape[1],
            compress=compress.shape[0], reshape_depth=second.shape[0] // res.shape[0])
        dims = GeneratorDims(
            image_channel=first.shape[1], block_expansion=first.shape[0], max_features=second.shape[0],
            num_down_blocks=n_down, reshape_channel=res.shape[0], reshape_depth=second.shape[0] // res.shape[0],
            num_resblocks=count_indexed(state, "resblocks_3d.3dr"),
            spade_hidden=require(state, "decoder.up_1.norm_0.mlp_shared.0.weight", source).shape[0],
            motion=motion)
        net = cls(dims)
        load_strict(net, state, source)
        return net
