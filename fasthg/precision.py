"""Mixed precision: which autocast dtype ``--amp`` means on a device."""
import contextlib

import torch

from .errors import InvalidValueError

AMP_MODES = ("auto", "off", "bf16", "fp16")


def _native_bf16(device):
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN's own test for bf16 instructions (AVX512-BF16, AMX) on this CPU
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(mode, device):
    """The autocast dtype for ``--amp`` ``mode`` on ``device``, or None for full fp32.

    auto: bf16 where the hardware computes it natively (it halves a CPU training step on
    AVX512-BF16 machines), else fp32. fp16 needs CUDA, where a GradScaler goes with it.
    """
    if mode == "auto":
        return torch.bfloat16 if _native_bf16(device) else None
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
