"""Every shipped kernel configuration, as data: the launchers, the ahead-of-time build and the
benchmarks all read this one list.

A :class:`KernelConfig` names a ``@triton.jit`` kernel, the element type of its tensors, the GPU
architectures it is meant for, its block sizes (constexprs) and its warps and pipeline stages.
``signature`` maps each runtime argument to a Triton type, with ``{dtype}`` standing for the
element type (``"*{dtype}"`` is a pointer to it), as ``triton.compiler.ASTSource`` wants it.
"""
from dataclasses import dataclass, field

import torch

from . import upsample_add

TRITON_TYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}
ARCHS = (80, 90)


@dataclass(frozen=True)
class KernelConfig:
    name: str
    kernel: object
    dtype: torch.dtype
    signature: dict
    constexprs: dict
    num_warps: int = 4
    num_stages: int = 1
    archs: tuple = ARCHS
    extra: dict = field(default_factory=dict)

    @property
    def label(self):
        blocks = ",".join(f"{k}={v}" for k, v in self.constexprs.items())
        return f"{self.name}[{TRITON_TYPE[self.dtype]};{blocks};w{self.num_warps}s{self.num_stages}]"

    def triton_signature(self):
        element = TRITON_TYPE[self.dtype]
        return {arg: kind.format(dtype=element) for arg, kind in self.signature.items()}


def _strides(prefix):
    return {f"{prefix}_s{axis}": "i64" for axis in "nchw"}


_UPSAMPLE_FORWARD_SIGNATURE = {
    "low_ptr": "*{dtype}", "skip_ptr": "*{dtype}", "out_ptr": "*{dtype}",
    "N": "i32", "C": "i32", "H": "i32", "W": "i32",
    **_strides("low"), **_strides("skip"), **_strides("out"),
}
_UPSAMPLE_BACKWARD_SIGNATURE = {
    "grad_ptr": "*{dtype}", "grad_low_ptr": "*{dtype}",
    "N": "i32", "C": "i32", "h": "i32", "w": "i32",
    **_strides("grad"), **_strides("low"),
}

REGISTRY = []
for _dtype in TRITON_TYPE:
    _blocks = {"BLOCK_P": 32, "BLOCK_C": 64} if _dtype == torch.float64 else {"BLOCK_P": 64, "BLOCK_C": 64}
    REGISTRY += [
        KernelConfig("upsample_add_forward", upsample_add.upsample_add_forward_kernel, _dtype,
                     _UPSAMPLE_FORWARD_SIGNATURE, _blocks),
        KernelConfig("upsample_add_backward", upsample_add.upsample_add_backward_kernel, _dtype,
                     _UPSAMPLE_BACKWARD_SIGNATURE, _blocks),
    ]


def current_arch(device):
    """The registry architecture for a device: its compute capability on CUDA, else the first (interpreter)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return 90 if major >= 9 else 80
    return ARCHS[0]


def lookup(name, dtype, device):
    """The shipped configuration of kernel ``name`` for ``dtype`` on ``device``'s architecture."""
    arch = current_arch(device)
    for config in REGISTRY:
        if config.name == name and config.dtype == dtype and arch in config.archs:
            return config
    raise KeyError(f"no shipped configuration of {name} for {dtype} on sm_{arch}")
