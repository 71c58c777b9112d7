"""Image arithmetic on the pipeline's device, batched over frames: torch twins of the OpenCV calls of the
post-processing (resize, affine warp, Gaussian blur, 2x Lanczos, Poisson clone).

Images are (N,C,H,W) float32 tensors holding 0..255 values; every function works on any device. They follow
OpenCV's sampling rules (half-pixel centres, the same borders and kernels) in float32, where OpenCV uses
fixed-point tables for 8-bit images, so results differ from the numpy/OpenCV reference path by at most about
one level on a small share of pixels (measured in docs/performance.md, checked in tests/sadtalker/test_imageops.py).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

LANCZOS_TAPS = 8
CLONE_MASK_EROSION_PX = 3   # seamlessClone erodes its mask 3 times with a 3x3 kernel (from the zero frame)


def to_uint8_values(x: torch.Tensor) -> torch.Tensor:
    """Round half to even and saturate to 0..255 (OpenCV's saturate_cast), staying float."""
    return torch.round(x).clamp_(0, 255)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`cv2.resize(img, (w, h))` of uint8 images (INTER_LINEAR, no antialiasing); size = (w, h).

    Reproduces OpenCV's 8-bit arithmetic in int32: 11-bit coefficients, a horizontal pass kept exact, and the
    vectorised vertical pass ((D0>>4)*b0>>16 + (D1>>4)*b1>>16 + 2) >> 2.
    """
    w, h = size
    if (h, w) == tuple(x.shape[-2:]):
        return x
    sx0, sx1, a0, a1 = _linear_taps(w, x.shape[-1], x.device)
    sy0, sy1, b0, b1 = _linear_taps(h, x.shape[-2], x.device)
    pixels = x.to(torch.int32)
    rows = pixels.index_select(-1, sx0) * a0 + pixels.index_select(-1, sx1) * a1          # N x C x H x w
    top = ((rows.index_select(-2, sy0) >> 4) * b0[:, None]) >> 16
    bottom = ((rows.index_select(-2, sy1) >> 4) * b1[:, None]) >> 16
    return ((top + bottom + 2) >> 2).clamp_(0, 255).to(x.dtype)


def _linear_taps(dst: int, src: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Source indices and 11-bit weights of OpenCV's INTER_LINEAR along one axis."""
    pos = ((np.arange(dst) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    index = np.floor(pos).astype(np.int64)
    frac = pos - index
    frac[index < 0], index[index < 0] = 0, 0
    frac[index >= src - 1], index[index >= src - 1] = 0, src - 1
    w1 = np.round(frac * 2048).astype(np.int32)
    w0 = np.round((1 - frac) * 2048).astype(np.int32)
    as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return as_tensor(index), as_tensor(np.minimum(index + 1, src - 1)), as_tensor(w0), as_tensor(w1)


def warp_affine(x: torch.Tensor, matrices: np.ndarray, dsize: tuple[int, int],
                border: tuple[float, ...] | float = 0.0, *, round_values: bool = True,
                origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """`cv2.warpAffine` (bilinear, constant border) of each image with its own (2,3) src->dst matrix.

    x: (N,C,H,W); matrices: (N,2,3); dsize = (width, height). round_values: uint8 images (rounded and
    saturated), else float masks. origin: the output is the window of that size starting at this (x, y)
    of the full output. Samples are taken with grid_sample on (x - border), so pixels outside the image read
    exactly the border value.
    """
    n, c, h_src, w_src = x.shape
    width, height = dsize
    inverse = np.stack([_invert_affine(m) for m in np.asarray(matrices, np.float64).reshape(n, 2, 3)])
    a = torch.from_numpy(inverse.astype(np.float32)).to(x.device)                  # N x 2 x 3, dst -> src
    ys, xs = torch.meshgrid(torch.arange(origin[1], origin[1] + height, device=x.device, dtype=torch.float32),
                            torch.arange(origin[0], origin[0] + width, device=x.device, dtype=torch.float32),
                            indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)       # 1 x HW x 3
    src = pts @ a.transpose(1, 2)                                                      # N x HW x 2 (pixels)
    grid = torch.stack([(2 * src[..., 0] + 1) / w_src - 1, (2 * src[..., 1] + 1) / h_src - 1], dim=-1)
    fill = torch.as_tensor(border, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
    out = F.grid_sample(x - fill, grid.reshape(n, height, width, 2).to(x.dtype), mode="bilinear", padding_mode="zeros",
                        align_corners=False) + fill
    return to_uint8_values(out) if round_values else out


def warp_affine_fixed(x: torch.Tensor, matrices: np.ndarray, dsize: tuple[int, int],
                      origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """`cv2.warpAffine` of float masks as OpenCV 4 does it for float64 images (bilinear, border 0): source
    coordinates on a 1/32-pixel grid (10-bit products of the matrix, shifted by 5) and table weights.

    x: (N,C,H,W) floats; matrices: (N,2,3) src->dst; dsize = (width, height); origin as in `warp_affine`.
    """
    n, c, h_src, w_src = x.shape
    width, height = dsize
    padded = F.pad(x, (1, 1, 1, 1))                                 # a 1-px frame of the border value 0
    out = []
    for k, m in enumerate(np.asarray(matrices, np.float64).reshape(n, 2, 3)):
        a = _invert_affine(m)
        cols = np.arange(origin[0], origin[0] + width, dtype=np.float64)
        rows = np.arange(origin[1], origin[1] + height, dtype=np.float64)
        # OpenCV: X = (round((a01*y + a02)*1024) + round(a00*x*1024) + 16) >> 5, in 1/32 px (same for Y);
        # only the per-row and per-column terms are computed here, the sum on the device
        gx = (_rounded((a[0, 1] * rows + a[0, 2]) * 1024, x.device)[:, None]
              + _rounded(a[0, 0] * cols * 1024, x.device)[None, :] + 16) >> 5
        gy = (_rounded((a[1, 1] * rows + a[1, 2]) * 1024, x.device)[:, None]
              + _rounded(a[1, 0] * cols * 1024, x.device)[None, :] + 16) >> 5
        ix, iy = gx >> 5, gy >> 5
        # OpenCV's weight table: float32 products of the 1-D weights, summed in the image's precision
        wx, wy = (gx & 31).to(torch.float32) / 32, (gy & 31).to(torch.float32) / 32
        weights = [((1 - wy) * (1 - wx)), ((1 - wy) * wx), (wy * (1 - wx)), (wy * wx)]
        img = padded[k].reshape(c, -1)
        taps = [(0, 0), (0, 1), (1, 0), (1, 1)]
        total = torch.zeros(c, height, width, dtype=x.dtype, device=x.device)
        for (dy, dx), weight in zip(taps, weights, strict=True):
            yy = (iy + dy).clamp(-1, h_src) + 1
            xx = (ix + dx).clamp(-1, w_src) + 1
            total = total + img[:, (yy * (w_src + 2) + xx).reshape(-1)].reshape(c, height, width) * weight.to(x.dtype)
        out.append(total)
    return torch.stack(out)


def reach(matrix: np.ndarray, src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    """The output window (x0, y0, x1, y1) a bilinear warp of a src_wh image by the (2,3) src->dst matrix can
    touch (2 px of slack); outside it every sample is the border value."""
    w, h = src_wh
    corners = np.array([[-1, -1, 1], [w, -1, 1], [-1, h, 1], [w, h, 1]], np.float64) @ np.asarray(matrix).T
    x0, y0 = np.floor(corners.min(axis=0)) - 2
    x1, y1 = np.ceil(corners.max(axis=0)) + 3
    clip = lambda v, hi: int(np.clip(v, 0, hi))  # noqa: E731
    return clip(x0, dst_wh[0]), clip(y0, dst_wh[1]), clip(x1, dst_wh[0]), clip(y1, dst_wh[1])


def _rounded(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """cvRound (half to even) of float64 values, as int64 on `device`."""
    return torch.from_numpy(np.rint(values).astype(np.int64)).to(device)


def _invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def gaussian_kernel(ksize: int, sigma: float, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`cv2.getGaussianKernel(ksize, sigma)` (its float64 taps, to the last bit) as a (ksize,) tensor."""
    return torch.from_numpy(cv2.getGaussianKernel(ksize, sigma, cv2.CV_64F)[:, 0].copy()).to(device, dtype)


def gaussian_blur(x: torch.Tensor, ksize: int, sigma: float) -> torch.Tensor:
    """`cv2.GaussianBlur(img, (k, k), sigma)` of (N,C,H,W) floats: separable, BORDER_REFLECT_101."""
    c, r = x.shape[1], ksize // 2
    k = gaussian_kernel(ksize, sigma, x.device, x.dtype)
    out = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, ksize), groups=c)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, ksize, 1), groups=c)


def lanczos_weights(frac: float) -> np.ndarray:
    """The 8 Lanczos-4 taps at distances frac+3 .. frac-4 from the sample point, normalised to sum 1."""
    d = frac + 3 - np.arange(LANCZOS_TAPS, dtype=np.float64)
    w = np.sinc(d) * np.sinc(d / 4)
    return w / w.sum()


def upscale2x_lanczos(x: torch.Tensor) -> torch.Tensor:
    """`cv2.resize(img, (2w, 2h), interpolation=INTER_LANCZOS4)` of uint8 images, edges replicated.

    OpenCV's 8-bit arithmetic: taps rounded to 11 bits, exact integer sums along rows then columns, then
    (sum + 2^21) >> 22; here in float64 (every intermediate is an integer below 2^53, so exact).
    """
    rows = _lanczos2x_axis(x.double(), dim=-1)
    return torch.floor((_lanczos2x_axis(rows, dim=-2) + 2.0**21) / 2.0**22).clamp_(0, 255).to(x.dtype)


def _lanczos2x_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    # output 2i samples source i - 0.25 (taps i-4..i+3, frac 0.75); output 2i+1 samples i + 0.25 (i-3..i+4)
    moved = x.movedim(dim, -1)
    shape, length = moved.shape, moved.shape[-1]
    flat = moved.reshape(-1, 1, length)
    padded = F.pad(flat, (4, 4), mode="replicate")
    taps = np.stack([lanczos_weights(0.75), lanczos_weights(0.25)]).astype(np.float32)
    fixed = np.round(taps * 2048)   # 11-bit taps; each row sums to 2048
    kernel = torch.from_numpy(fixed).to(x.device, x.dtype).view(2, 1, LANCZOS_TAPS)
    both = F.conv1d(padded, kernel)                                            # B x 2 x (length + 1)
    out = torch.stack([both[:, 0, :length], both[:, 1, 1:length + 1]], dim=-1).reshape(*shape[:-1], 2 * length)
    return out.movedim(-1, dim)


def poisson_clone(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """`cv2.seamlessClone(src, dst, all-255 mask, centre, NORMAL_CLONE)` restricted to its region.

    dst, src: (N,C,h,w) same-size regions (the destination under the pasted box and the pasted patch, both
    without the box's outer 1-px frame, as OpenCV crops them). Solves the discrete Poisson equation
    lap(u) = div(G) inside with u = dst on the 1-px border, exactly as OpenCV does (G: src gradients in the
    eroded mask, dst gradients in the 3-px band along the edge), by a 2-D sine transform (DST-I via FFT) in
    float32; values are truncated to 0..255 as OpenCV does.
    """
    h, w = dst.shape[-2:]
    if h < 3 or w < 3:
        return dst
    inner = torch.zeros(h, w, dtype=dst.dtype, device=dst.device)
    b = CLONE_MASK_EROSION_PX
    inner[b:h - b, b:w - b] = 1
    gx = _forward_diff(dst, -1) * (1 - inner) + _forward_diff(src, -1) * inner
    gy = _forward_diff(dst, -2) * (1 - inner) + _forward_diff(src, -2) * inner
    div = (gx[..., 1:-1, 1:-1] - gx[..., 1:-1, :-2]) + (gy[..., 1:-1, 1:-1] - gy[..., :-2, 1:-1])
    boundary = torch.zeros_like(div)   # the known border values moved to the right-hand side
    boundary[..., 0, :] += dst[..., 0, 1:-1]
    boundary[..., -1, :] += dst[..., -1, 1:-1]
    boundary[..., :, 0] += dst[..., 1:-1, 0]
    boundary[..., :, -1] += dst[..., 1:-1, -1]
    rhs = div - boundary
    m, n = rhs.shape[-2:]
    ky = 2 * torch.cos(math.pi * torch.arange(1, m + 1, device=dst.device, dtype=torch.float32) / (m + 1))
    kx = 2 * torch.cos(math.pi * torch.arange(1, n + 1, device=dst.device, dtype=torch.float32) / (n + 1))
    spectrum = _dst2(rhs.float()) / (ky[:, None] + kx[None, :] - 4)
    solved = _dst2(spectrum) * (4.0 / ((m + 1) * (n + 1)))
    out = dst.clone()
    out[..., 1:-1, 1:-1] = torch.trunc(solved.clamp(0, 255)).to(dst.dtype)
    return out


def _forward_diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x[i+1] - x[i] along dim, the last one reflected (x[n-2] - x[n-1]) as filter2D's default border."""
    nxt = torch.cat([x.narrow(dim, 1, x.shape[dim] - 1), x.narrow(dim, x.shape[dim] - 2, 1)], dim=dim)
    return nxt - x


def _dst1(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised DST-I along the last dim: X_k = sum_j x_j sin(pi j k / (n+1)), j, k = 1..n."""
    n = x.shape[-1]
    zero = torch.zeros(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    odd = torch.cat([zero, x, zero, -x.flip(-1)], dim=-1)
    return -torch.fft.rfft(odd, dim=-1).imag[..., 1:n + 1] / 2


def _dst2(x: torch.Tensor) -> torch.Tensor:
    return _dst1(_dst1(x).transpose(-1, -2)).transpose(-1, -2)


def to_host_uint8(x: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) 0..255 values -> (N,H,W,3) uint8 numpy: the one copy of a batch off the device. On CUDA it
    goes through pinned memory with a non-blocking copy (waited for before the array is handed over)."""
    pixels = x.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if pixels.device.type != "cuda":
        return pixels.cpu().numpy()
    host = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
    host.copy_(pixels, non_blocking=True)
    torch.cuda.current_stream(pixels.device).synchronize()
    return host.numpy()
