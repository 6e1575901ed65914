"""``fasthg.ops.upsample_add(low, skip)`` = skip + nearest_x2(low), forward and backward.

``torch.library`` custom ops (``fasthg::upsample_add``, ``fasthg::upsample_add_backward``) with
fake implementations for meta tensors and torch.compile, paired by an autograd.Function (the
forward may update a BN's running statistics, which register_autograd does not allow):
grad_skip = g, grad_low = 2x2 sum-pool of g. In a model the forward also reduces the statistics
of its output for the Residual that normalises it next (:mod:`fasthg.ops.statistics`).
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .. import dispatch
from .launch import channels_last, empty_nhwc, launch_pixel_tiles
from .statistics import NextBatchNorm, check_next_bn, new_statistics, statistics_for
from .validate import check_int32_addressable, check_nonempty, check_same_device, check_same_dtype, check_tensor

KERNEL_LAUNCHES = {"forward": 1, "backward": 1}


@torch.library.custom_op("fasthg::upsample_add", mutates_args=("stats", "running_mean", "running_var"))
def _upsample_add(low: torch.Tensor, skip: torch.Tensor, stats: Optional[torch.Tensor],
                  running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor],
                  momentum: float) -> torch.Tensor:
    """out; with ``stats`` given, out's mean and biased var there, for the BN whose running statistics are given."""
    low, skip = channels_last(low), channels_last(skip)
    out = torch.empty_like(skip)
    n, c, h, w = skip.shape
    launch_pixel_tiles("upsample_add_forward", n * h * w, statistics_for(stats, running_mean, running_var), momentum,
                       low_ptr=low, skip_ptr=skip, out_ptr=out, N=n, C=c, H=h, W=w)
    return out


@_upsample_add.register_fake
def _(low, skip, stats, running_mean, running_var, momentum):
    return empty_nhwc(*skip.shape, like=skip)


@torch.library.custom_op("fasthg::upsample_add_backward", mutates_args=())
def _upsample_add_backward(grad: torch.Tensor) -> torch.Tensor:
    """grad_low: the 2x2 sum-pool of ``grad``."""
    n, c, h, w = grad.shape
    grad_low = empty_nhwc(n, c, h // 2, w // 2, like=grad)
    launch_pixel_tiles("upsample_add_backward", n * (h // 2) * (w // 2),
                       grad_ptr=channels_last(grad), grad_low_ptr=grad_low, N=n, C=c, h=h // 2, w=w // 2)
    return grad_low


@_upsample_add_backward.register_fake
def _(grad):
    n, c, h, w = grad.shape
    return empty_nhwc(n, c, h // 2, w // 2, like=grad)


def upsampled_grad(grad: torch.Tensor) -> torch.Tensor:
    """dL/dlow of anything + nearest_x2(low), given dL/dout: the 2x2 sum-pool of ``grad`` (one launch;
    also the backward of a Residual that adds an upsampled tensor, :mod:`fasthg.ops.residual`)."""
    return _upsample_add_backward(grad)


class UpsampleAddFunction(torch.autograd.Function):
    """Autograd of the fused op; the backward needs no tensor, so nothing is kept alive for it."""

    @staticmethod
    def forward(ctx, low, skip, stats, running_mean, running_var, momentum):
        return _upsample_add(low, skip, stats, running_mean, running_var, momentum)

    @staticmethod
    def backward(ctx, grad):
        return upsampled_grad(grad), grad, None, None, None, None


def upsample_add(low: torch.Tensor, skip: torch.Tensor,
                 next_bn: Optional[NextBatchNorm] = None) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """skip + nearest x2 upsampling of ``low``.

    low: (N, C, h, w); skip: (N, C, 2h, 2w), same dtype and device; either may be NCHW or
    channels_last. Fused (see :func:`fasthg.dispatch.runs_fused`): the custom op, returning
    channels_last. Otherwise PyTorch's own upsample and add.

    With ``next_bn`` (the BN that normalises the sum next) returns (out, stats): the batch mean
    and biased variance of out per channel, end to end in the accumulation dtype, reduced in the
    kernel's epilogue, which also updates ``next_bn``'s running statistics; on PyTorch's path stats
    is None (the consumer computes its own).
    """
    check_tensor("low", low, 4, layout="(N, C, h, w)")
    check_tensor("skip", skip, 4, layout="(N, C, 2h, 2w)")
    check_same_device(skip=skip, low=low)
    check_same_dtype(skip=skip, low=low)
    n, c, h, w = low.shape
    if tuple(skip.shape) != (n, c, 2 * h, 2 * w):
        raise ValueError(f"skip: expected shape (N, C, 2h, 2w) = {(n, c, 2 * h, 2 * w)} for low of shape "
                         f"{tuple(low.shape)}, got {tuple(skip.shape)}")
    check_nonempty("low", low)
    check_int32_addressable("skip", skip.shape)
    check_next_bn(next_bn, c)
    if not dispatch.runs_fused(skip):
        out = skip + F.interpolate(low, scale_factor=2, mode="nearest")
        return out if next_bn is None else (out, None)
    stats = new_statistics(c, skip, next_bn)
    out = UpsampleAddFunction.apply(low, skip, stats, *(next_bn or (None, None, 0.0)))
    return out if next_bn is None else (out, stats)
