"""Shared helpers of the heatmap tests: the backends under test and hand-derived expected maps."""
import math
from contextlib import nullcontext

import torch

import fasthg

BACKENDS = ("torch", "triton")


def run(backend, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the named backend ('reference' calls fasthg.reference's function of the same name)."""
    if backend == "reference":
        return getattr(fasthg.reference, fn.__name__)(*args, **kwargs)
    with fasthg.backend(backend):
        return fn(*args, **kwargs)


def f32(value):
    """``value`` rounded to float32, as keypoints are stored."""
    return float(torch.tensor(value, dtype=torch.float32))


def gaussian_on(size, centre, xs, ys, sigma):
    """A (H, W) float64 map: exp(-((u - cx)^2 + (v - cy)^2) / (2 sigma^2)) for u in ``xs`` and v
    in ``ys`` (the support, derived by hand in each test case), 0 elsewhere. ``centre`` None: all zero."""
    out = torch.zeros(size, dtype=torch.float64)
    if centre is None:
        return out
    cx, cy = centre
    for v in ys:
        for u in xs:
            out[v, u] = math.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * sigma ** 2))
    return out


def emulating(arch):
    """Run the Triton kernels with ``arch``'s registry configurations (GPU tiles) in the interpreter."""
    from fasthg.kernels import registry
    return registry.emulating(arch) if arch else nullcontext()
