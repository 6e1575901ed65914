"""``fasthg.ops.max_pool2x2(x)``: 2x2 max-pooling, stride 2, whose backward reads a 1-byte window index.

PyTorch's max_pool2d saves an int64 index per output element for its backward. This op's forward
also writes, when autograd will need it, each window's argmax as an int8 (0..3, row-major: where
PyTorch's max_pool2d puts the gradient, the last NaN if the window has one, else its first
maximum), and only that is saved: 1 byte per pooled element, 1/8 of a bf16 input's bytes, written
once and read once, where a backward finding each maximum again would re-read all of x. Without
autograd (no_grad, or an input that needs no gradient) the forward writes no index. Same values
and gradients as ``F.max_pool2d(x, 2)``. In a model the forward also reduces the statistics of its
output for the Residual that normalises it next (:mod:`fasthg.ops.statistics`); an
autograd.Function pairs the two custom ops, since that forward may update a BN's running
statistics, which register_autograd does not allow.

In a container, x also feeds another op: with ``pass_input`` the Function returns x itself too, an
alias through which autograd hands that op's gradient of x to the pool's backward, whose kernel adds
it as it writes dx (no separate sum; the alias is the Function's, as in :mod:`fasthg.ops.residual`).
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .. import dispatch
from .launch import channels_last, empty_nhwc, launch_pixel_tiles
from .statistics import NextBatchNorm, chain_result, check_next_bn, new_statistics, statistics_for
from .validate import check_flag, check_int32_addressable, check_nonempty, check_tensor

KERNEL_LAUNCHES = {"forward": 1, "backward": 1}


def _new_index(x):
    """An uninitialised int8 channels_last tensor of the pooled shape: each window's argmax."""
    n, c, h, w = x.shape
    return torch.empty((n, c, h // 2, w // 2), dtype=torch.int8, device=x.device, memory_format=torch.channels_last)


@torch.library.custom_op("fasthg::max_pool2x2", mutates_args=("index", "stats", "running_mean", "running_var"))
def _max_pool2x2(x: torch.Tensor, index: Optional[torch.Tensor], stats: Optional[torch.Tensor],
                 running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor],
                 momentum: float) -> torch.Tensor:
    """out; with ``index`` given, each window's argmax there (0..3, row-major) for the backward; with
    ``stats`` given, out's mean and biased var there, for the BN whose running statistics are given."""
    n, c, h, w = x.shape
    out = empty_nhwc(n, c, h // 2, w // 2, like=x)
    index_arguments = {} if index is None else dict(index_ptr=index)
    launch_pixel_tiles("max_pool2x2_forward", out.numel() // c, statistics_for(stats, running_mean, running_var), momentum,
                       flags=dict(WRITE_INDEX=index is not None), x_ptr=channels_last(x), out_ptr=out, N=n, C=c, H=h,
                       W=w, **index_arguments)
    return out


@_max_pool2x2.register_fake
def _(x, index, stats, running_mean, running_var, momentum):
    n, c, h, w = x.shape
    return empty_nhwc(n, c, h // 2, w // 2, like=x)


@torch.library.custom_op("fasthg::max_pool2x2_backward", mutates_args=())
def _max_pool2x2_backward(grad: torch.Tensor, index: torch.Tensor, height: int, width: int,
                          through: Optional[torch.Tensor] = None) -> torch.Tensor:
    """dL/dx, x (N, C, ``height``, ``width``), from g = ``grad`` and the forward's ``index``, plus
    ``through`` (given or None: x's gradient from its other consumers)."""
    n, c = grad.shape[:2]
    through_arguments = {} if through is None else dict(through_ptr=channels_last(through))
    if height % 2 or width % 2:  # the trailing row or column no window covers: zero, or through's
        grad_x = empty_nhwc(n, c, height, width, like=grad).zero_() if through is None else \
            through.clone(memory_format=torch.channels_last)
    else:
        grad_x = empty_nhwc(n, c, height, width, like=grad)
    launch_pixel_tiles("max_pool2x2_backward", grad.numel() // c, flags=dict(HAS_THROUGH=through is not None),
                       grad_ptr=channels_last(grad), index_ptr=channels_last(index), grad_x_ptr=grad_x, N=n, C=c,
                       H=height, W=width, **through_arguments)
    return grad_x


@_max_pool2x2_backward.register_fake
def _(grad, index, height, width, through=None):
    return empty_nhwc(grad.shape[0], grad.shape[1], height, width, like=grad)


class MaxPoolFunction(torch.autograd.Function):
    """Autograd of the fused op: only the window index is saved, written when ``differentiable``
    (autograd records and x needs a gradient). With ``pass_input`` it returns (out, x)."""

    @staticmethod
    def forward(ctx, x, stats, running_mean, running_var, momentum, pass_input, differentiable):
        index = _new_index(x) if differentiable else None
        out = _max_pool2x2(x, index, stats, running_mean, running_var, momentum)
        ctx.save_for_backward(index)
        ctx.input_size = x.shape[2:]
        if not pass_input:
            return out
        ctx.set_materialize_grads(False)  # an unused pass-through adds nothing
        return out, x

    @staticmethod
    def backward(ctx, grad, grad_through=None):
        (index,) = ctx.saved_tensors
        grad_x = grad_through if grad is None else _max_pool2x2_backward(grad, index, *ctx.input_size, grad_through)
        return grad_x, None, None, None, None, None, None


def max_pool2x2(x: torch.Tensor, next_bn: Optional[NextBatchNorm] = None,
                pass_input: bool = False) -> Union[torch.Tensor, tuple]:
    """2x2 max-pooling with stride 2 of x (N, C, H, W), NCHW or channels_last.

    Fused (see :func:`fasthg.dispatch.runs_fused`): the custom op, returning channels_last.
    Otherwise ``F.max_pool2d(x, 2)`` itself. With ``next_bn`` (the BN that normalises the result
    next) returns (out, stats) as :func:`fasthg.ops.upsample_add` does. With ``pass_input`` (for a
    container whose x feeds another op too) returns (out, stats or None, x's pass-through): x
    itself, whose gradient the pool's backward adds to its own (x as it is off the fused path).
    """
    check_tensor("x", x, 4, layout="(N, C, H, W)")
    if x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"x: expected height and width >= 2 to pool 2x2, got shape {tuple(x.shape)}")
    check_nonempty("x", x)
    check_int32_addressable("x", x.shape)
    check_next_bn(next_bn, x.shape[1])
    check_flag("pass_input", pass_input)
    if not dispatch.runs_fused(x):
        return chain_result(F.max_pool2d(x, 2), None, x, next_bn, pass_input)
    stats = new_statistics(x.shape[1], x, next_bn)
    outputs = MaxPoolFunction.apply(x, stats, *(next_bn or (None, None, 0.0)), pass_input,
                                    torch.is_grad_enabled() and x.requires_grad)
    out, through = outputs if pass_input else (outputs, None)
    return chain_result(out, stats, through, next_bn, pass_input)
