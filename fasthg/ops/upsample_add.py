"""``fasthg.ops.upsample_add(low, skip)`` = skip + nearest_x2(low), forward and backward.

A ``torch.library`` custom op (``fasthg::upsample_add``) with a fake implementation for meta
tensors and torch.compile, and a registered backward (grad_skip = g, grad_low = 2x2 sum-pool of g).
"""
import torch
import torch.nn.functional as F

from .. import dispatch
from .launch import channels_last, empty_nhwc, launch_pixel_tiles
from .validate import check_int32_addressable, check_nonempty, check_same_device, check_same_dtype, check_tensor

KERNEL_LAUNCHES = {"forward": 1, "backward": 1}


@torch.library.custom_op("fasthg::upsample_add", mutates_args=())
def _upsample_add(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    low, skip = channels_last(low), channels_last(skip)
    out = torch.empty_like(skip)
    launch_pixel_tiles("upsample_add_forward", (low, skip, out), skip.shape, out.numel() // out.shape[1])
    return out


@_upsample_add.register_fake
def _(low, skip):
    return empty_nhwc(*skip.shape, like=skip)


@torch.library.custom_op("fasthg::upsample_add_backward", mutates_args=())
def _upsample_add_backward(grad: torch.Tensor) -> torch.Tensor:
    """grad_low: the 2x2 sum-pool of ``grad``."""
    n, c, h, w = grad.shape
    grad_low = empty_nhwc(n, c, h // 2, w // 2, like=grad)
    launch_pixel_tiles("upsample_add_backward", (channels_last(grad), grad_low), grad_low.shape, n * (h // 2) * (w // 2))
    return grad_low


@_upsample_add_backward.register_fake
def _(grad):
    n, c, h, w = grad.shape
    return empty_nhwc(n, c, h // 2, w // 2, like=grad)


def _setup_context(ctx, inputs, output):
    pass  # the backward needs no tensor: nothing is kept alive for it


def _backward(ctx, grad):
    return _upsample_add_backward(grad), grad


_upsample_add.register_autograd(_backward, setup_context=_setup_context)


def upsample_add(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """skip + nearest x2 upsampling of ``low``.

    low: (N, C, h, w); skip: (N, C, 2h, 2w), same dtype and device; either may be NCHW or
    channels_last. Fused (see :func:`fasthg.dispatch.runs_fused`): the custom op, returning
    channels_last. Otherwise PyTorch's own upsample and add.
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
    if dispatch.runs_fused(skip):
        return _upsample_add(low, skip)
    return skip + F.interpolate(low, scale_factor=2, mode="nearest")
