"""Speed settings of a loaded pipeline that do not change what is computed: batch size from free GPU memory,
channels_last for the SPADE decoder on CUDA in reduced precision, and optional torch.compile.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 2               # the reference's default; CPU throughput hardly depends on it
MAX_AUTO_BATCH_SIZE = 32
FREE_MEMORY_SHARE = 0.6          # of the free GPU memory at job start; the rest for GFPGAN, ffmpeg and others
# renderer activations per frame when none were measured (fp32, 256 px; x4 at 512, /2 in bf16/fp16): the
# 3-D hourglass (~80x16x64x64 floats per level) and the 256x256 SPADE blocks dominate
ESTIMATED_FRAME_BYTES_256 = 600 * 2**20


def estimated_frame_bytes(size: int, dtype: torch.dtype) -> int:
    scale = (size / 256) ** 2 * (0.5 if dtype in (torch.float16, torch.bfloat16) else 1.0)
    return int(ESTIMATED_FRAME_BYTES_256 * scale)


def auto_batch_size(device: str | torch.device, frame_bytes: int) -> int:
    """Frames per render batch: CPU_BATCH_SIZE on the CPU; on a GPU as many as FREE_MEMORY_SHARE of its free
    memory holds at `frame_bytes` each (measured at warm-up, else estimated), 1..MAX_AUTO_BATCH_SIZE."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return CPU_BATCH_SIZE
    free, _total = torch.cuda.mem_get_info(dev)
    return batch_for_memory(free, frame_bytes)


def batch_for_memory(free_bytes: int, frame_bytes: int) -> int:
    return max(1, min(MAX_AUTO_BATCH_SIZE, int(free_bytes * FREE_MEMORY_SHARE) // max(1, frame_bytes)))


def measure_frame_bytes(device: str | torch.device, render_two_frames) -> int | None:
    """Peak GPU memory per frame of a 2-frame render (None off CUDA)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize(dev)
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    render_two_frames()
    torch.cuda.synchronize(dev)
    return max(1, (torch.cuda.max_memory_allocated(dev) - base) // 2)


def _to_channels_last(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last),) + tuple(args[1:])


def tune_generator(generator: nn.Module, device: str | torch.device, dtype: torch.dtype, compile_: bool) -> None:
    """channels_last for the 2-D SPADE decoder where tensor cores use it (CUDA, bf16/fp16); torch.compile of
    the decoder and the dense-motion hourglass when `compile_` (fixed shapes per batch size)."""
    if torch.device(device).type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        generator.decoder.to(memory_format=torch.channels_last)
        generator.decoder.register_forward_pre_hook(_to_channels_last)
    if compile_:
        generator.decoder.compile(dynamic=False)
        generator.dense_motion_network.hourglass.compile(dynamic=False)
        log.info("torch.compile enabled for the SPADE decoder and the dense-motion hourglass")
