"""The numeric precision policy: one mode for every network of a pipeline, set explicitly at load time.

| mode | renderer (generator), GFPGAN, ParseNet, RetinaFace | CUDA matmul/cuDNN TF32 |
| ---- | -------------------------------------------------- | ---------------------- |
| fp32 | float32 (what conformance checks; the default)      | off                    |
| tf32 | float32 storage, TF32 tensor-core convolutions      | on (CUDA only)         |
| bf16 | bfloat16                                            | off                    |
| fp16 | float16                                             | off                    |

fp32 islands in every mode (the math the frames are most sensitive to, and cheap): the keypoint detector,
the mapping nets, the head-pose softmax and rotation (keypoints.py), the dense-motion field (grid, heatmaps,
mask softmax, deformation) and both grid_samples. The audio networks, the 3DMM net and FAN landmarks stay
float32. A reduced-precision face network hands float32 outputs back (a forward hook), so the numpy code
around it is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
DEFAULT_PRECISION = "fp32"
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def storage_dtype(precision: str) -> torch.dtype:
    """The dtype of the reduced-precision networks' weights and activations."""
    return _DTYPES[check_precision(precision)]


def apply_backend_flags(precision: str, device: str | torch.device) -> None:
    """Set TF32 explicitly (process-wide; torch's own default differs between matmul and cuDNN): on for
    "tf32" only. cudnn.benchmark on CUDA: the frame shapes of a pipeline are fixed, so the autotuned
    kernels are reused for every batch."""
    tf32 = check_precision(precision) == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True


def unavailable_reason(precision: str, device: str | torch.device) -> str | None:
    """Why `precision` cannot be measured as itself on `device` (None when it can)."""
    dev = torch.device(device)
    if precision == "tf32" and dev.type != "cuda":
        return "TF32 is a CUDA tensor-core mode; on the CPU it is fp32"
    if dev.type == "cuda":
        major, _ = torch.cuda.get_device_capability(dev)
        if precision in ("tf32", "bf16") and major < 8:
            return f"{precision} needs compute capability 8.0+ (this GPU has {major}.x)"
    return None


def _input_to_float(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].float(),) + tuple(args[1:])


def _output_to(dtype: torch.dtype):
    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output.to(dtype)
    return hook


def emulate_cpu_convs(net: nn.Module, dtype: torch.dtype) -> None:
    """On a CPU without native bfloat16/float16 convolutions (this development machine: a 7x7x7 Conv3d takes
    minutes instead of 0.2 s, a Conv2d 10-400x longer), each Conv2d/Conv3d keeps its reduced-precision weights
    in float32 form and computes in float32 between inputs and outputs rounded to `dtype`: the numerics of
    tensor cores (reduced inputs, float32 accumulation) at fp32 speed. Everything else runs in `dtype`."""
    if dtype == torch.float32:
        return
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            module.to(dtype).float()   # round the weights to dtype, keep them as float32
            module.register_forward_pre_hook(_input_to_float)
            module.register_forward_hook(_output_to(dtype))


def _outputs_to_float(_module: nn.Module, _inputs: object, output: object) -> object:
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, (list, tuple)):
        return type(output)(_outputs_to_float(_module, _inputs, o) for o in output)
    if isinstance(output, dict):
        return {k: _outputs_to_float(_module, _inputs, v) for k, v in output.items()}
    return output


def cast_network(net: nn.Module, precision: str) -> nn.Module:
    """Store `net` in the mode's dtype; its outputs come back as float32 (inputs are cast by its callers,
    which read the dtype of the net's first parameter, so keep that one a reduced tensor)."""
    dtype = storage_dtype(precision)
    if dtype != torch.float32:
        net.to(dtype)
        net.register_forward_hook(_outputs_to_float)
    return net
