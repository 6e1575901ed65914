"""``fasthg.ops.max_pool2x2(x)``: 2x2 max-pooling, stride 2, with a backward that keeps no indices.

PyTorch's max_pool2d saves an int64 index per output element for its backward; this op saves
only its input, which the hourglass keeps anyway (the next Residual's input), and finds each
window's maximum again in backward. Same values and gradients as ``F.max_pool2d(x, 2)``. In a
model the forward also reduces the statistics of its output for the Residual that normalises it
next (:mod:`fasthg.ops.statistics`); an autograd.Function pairs the two custom ops, since that
forward may update a BN's running statistics, which register_autograd does not allow.

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


@torch.library.custom_op("fasthg::max_pool2x2", mutates_args=("stats", "running_mean", "running_var"))
def _max_pool2x2(x: torch.Tensor, stats: Optional[torch.Tensor], running_mean: Optional[torch.Tensor],
                 running_var: Optional[torch.Tensor], momentum: float) -> torch.Tensor:
    """out; with ``stats`` given, out's mean and biased var there, for the BN whose running statistics are given."""
    n, c, h, w = x.shape
    out = empty_nhwc(n, c, h // 2, w // 2, like=x)
    launch_pixel_tiles("max_pool2x2_forward", out.numel() // c, statistics_for(stats, running_mean, running_var), momentum,
                       x_ptr=channels_last(x), out_ptr=out, N=n, C=c, H=h, W=w)
    return out


@_max_pool2x2.register_fake
def _(x, stats, running_mean, running_var, momentum):
    n, c, h, w = x.shape
    return empty_nhwc(n, c, h // 2, w // 2, like=x)


@torch.library.custom_op("fasthg::max_pool2x2_backward", mutates_args=())
def _max_pool2x2_backward(grad: torch.Tensor, x: torch.Tensor, through: Optional[torch.Tensor] = None) -> torch.Tensor:
    """dL/dx from g = ``grad``, plus ``through`` (given or None: x's gradient from its other consumers)."""
    n, c, h, w = x.shape
    through_arguments = {} if through is None else dict(through_ptr=channels_last(through))
    if h % 2 or w % 2:  # the trailing row or column no window covers: zero, or through's
        grad_x = torch.zeros_like(x, memory_format=torch.channels_last) if through is None else \
            through.clone(memory_format=torch.channels_last)
    else:
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
    launch_pixel_tiles("max_pool2x2_backward", grad.numel() // c, flags=dict(HAS_THROUGH=through is not None),
                       grad_ptr=channels_last(grad), x_ptr=channels_last(x), grad_x_ptr=grad_x, N=n, C=c, H=h, W=w,
                       **through_arguments)
    return grad_x


@_max_pool2x2_backward.register_fake
def _(grad, x, through=None):
    return torch.empty_like(x, memory_format=torch.channels_last)


class MaxPoolFunction(torch.autograd.Function):
    """Autograd of the fused op: only the input is saved. With ``pass_input`` it returns (out, x)."""

    @staticmethod
    def forward(ctx, x, stats, running_mean, running_var, momentum, pass_input):
        ctx.save_for_backward(x)
        out = _max_pool2x2(x, stats, running_mean, running_var, momentum)
        if not pass_input:
            return out
        ctx.set_materialize_grads(False)  # an unused pass-through adds nothing
        return out, x

    @staticmethod
    def backward(ctx, grad, grad_through=None):
        (x,) = ctx.saved_tensors
        grad_x = grad_through if grad is None else _max_pool2x2_backward(grad, x, grad_through)
        return grad_x, None, None, None, None, None


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
    outputs = MaxPoolFunction.apply(x, stats, *(next_bn or (None, None, 0.0)), pass_input)
    out, through = outputs if pass_input else (outputs, None)
    return chain_result(out, stats, through, next_bn, pass_input)
