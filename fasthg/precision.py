"""Mixed precision: which autocast dtype ``--amp`` means on a device."""
import contextlib

import torch

from .errors import InvalidValueError

AMP_MODES = ("auto", "off", "bf16", "fp16")


def autocast_dtype(mode, device):
    """The autocast dtype for ``--amp`` ``mode`` on ``device``, or None for full fp32.

    auto: bf16 on a CUDA GPU that supports it, else fp32; on a CPU always fp32, so a run gives the
    same numbers on every x86 CPU (bf16 would halve a step only on those with AVX512-BF16 or AMX,
    and change the results there: ``--amp bf16`` asks for it). fp16 needs CUDA, where a GradScaler
    goes with it.
    """
    if mode == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if mode == "off":
        return None
    if mode == "fp16" and device.type != "cuda":
        raise InvalidValueError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def autocast(device, dtype):
    """An autocast context for ``dtype`` on ``device`` (a no-op context for None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
