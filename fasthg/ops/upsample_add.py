"""``fasthg.ops.upsample_add(low, skip)`` = skip + nearest_x2(low), forward and backward.

A ``torch.library`` custom op (``fasthg::upsample_add``) with a fake implementation for meta
tensors and torch.compile, and a registered backward (grad_skip = g, grad_low = 2x2 sum-pool of g).
"""
import torch
import torch.nn.functional as F
import triton

from .. import dispatch
from ..kernels import registry
from ..kernels.upsample_add import upsample_add_backward_kernel, upsample_add_forward_kernel
from .launch import channels_last, empty_nhwc
from .validate import check_same_device, check_same_dtype, check_tensor

KERNEL_LAUNCHES = {"forward": 1, "backward": 1}


def _launch(name, kernel, out, inputs, sizes):
    config = registry.lookup(name, out.dtype, out.device)
    n, c, h, w = sizes
    grid = (triton.cdiv(n * h * w, config.constexprs["BLOCK_P"]), triton.cdiv(c, config.constexprs["BLOCK_C"]))
    kernel[grid](*inputs, out, n, c, h, w, **config.constexprs, num_warps=config.num_warps, num_stages=config.num_stages)
    return out


@torch.library.custom_op("fasthg::upsample_add", mutates_args=())
def _upsample_add(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    if not dispatch.use_triton(skip):
        return torch.add(skip, F.interpolate(low, scale_factor=2, mode="nearest"), out=empty_nhwc(*skip.shape, like=skip))
    low, skip = channels_last(low), channels_last(skip)
    out = torch.empty_like(skip)
    return _launch("upsample_add_forward", upsample_add_forward_kernel, out, (low, skip), skip.shape)


@_upsample_add.register_fake
def _(low, skip):
    return empty_nhwc(*skip.shape, like=skip)


@torch.library.custom_op("fasthg::upsample_add_backward", mutates_args=())
def _upsample_add_backward(grad: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    if not dispatch.use_triton(grad):
        return _sum_pool(grad)
    grad_low = empty_nhwc(*low.shape, like=grad)
    return _launch("upsample_add_backward", upsample_add_backward_kernel, grad_low, (channels_last(grad),), low.shape)


def _sum_pool(grad):
    """2x2 sum-pool, exact in every dtype (no division as in avg_pool2d * 4)."""
    return grad.unflatten(3, (grad.shape[3] // 2, 2)).unflatten(2, (grad.shape[2] // 2, 2)).sum(dim=(3, 5))


@_upsample_add_backward.register_fake
def _(grad, low):
    return empty_nhwc(*low.shape, like=grad)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad):
    (low,) = ctx.saved_tensors
    return _upsample_add_backward(grad, low), grad


_upsample_add.register_autograd(_backward, setup_context=_setup_context)


def upsample_add(low, skip):
    """skip + nearest x2 upsampling of ``low``.

    low: (N, C, h, w); skip: (N, C, 2h, 2w), same dtype and device; either may be NCHW or
    channels_last. Returns a channels_last tensor shaped like ``skip``.
    """
    check_tensor("low", low, 4, layout="(N, C, h, w)")
    check_tensor("skip", skip, 4, layout="(N, C, 2h, 2w)")
    check_same_device(skip=skip, low=low)
    check_same_dtype(skip=skip, low=low)
    n, c, h, w = low.shape
    if tuple(skip.shape) != (n, c, 2 * h, 2 * w):
        raise ValueError(f"skip: expected shape (N, C, 2h, 2w) = {(n, c, 2 * h, 2 * w)} for low of shape "
                         f"{tuple(low.shape)}, got {tuple(skip.shape)}")
    return _upsample_add(low, skip)
