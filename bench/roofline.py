"""A roofline model of a GPU: a lower bound on how long kernels take, not a measurement.

Each kernel takes at least max(bytes / HBM bandwidth, FLOPs / peak FLOP rate) plus a fixed launch
overhead; a step takes at least the sum over its kernels. The model assumes perfect caching of
re-reads (see :mod:`bench.traffic`), full overlap of memory and compute within a kernel, and no
overlap between kernels. Peaks are the dense datasheet figures; fp32 is the CUDA-core rate (TF32
tensor cores, which PyTorch's convolutions use by default, would be faster: compute time for fp32
is then an upper figure of the lower bound).
"""
from dataclasses import dataclass

import torch

LAUNCH_OVERHEAD_SECONDS = 3e-6


@dataclass(frozen=True)
class Gpu:
    name: str
    bandwidth: float  # HBM bytes per second
    peak_flops: dict  # dtype: dense FLOP/s
    arch: int  # compute capability, as the AOT report names it (sm_90: 90)
    sms: int  # streaming multiprocessors, for the wave model (bench/wave.py)

    def busy_seconds(self, kernel, dtype):
        """max(bytes / bandwidth, FLOPs / peak): one kernel's time with every SM busy, overhead aside."""
        return max(kernel.bytes / self.bandwidth, kernel.flops / self.peak_flops[dtype])

    def kernel_seconds(self, kernel, dtype):
        """Lower-bound time of one kernel with tensors of ``dtype``."""
        return self.busy_seconds(kernel, dtype) + LAUNCH_OVERHEAD_SECONDS

    def step_seconds(self, kernels, dtype):
        return sum(self.kernel_seconds(kernel, dtype) for kernel in kernels)


GPUS = (
    Gpu("H100", 3.35e12, {torch.bfloat16: 990e12, torch.float32: 67e12}, arch=90, sms=132),
    Gpu("A100", 2.0e12, {torch.bfloat16: 312e12, torch.float32: 19.5e12}, arch=80, sms=108),
)
