"""``fasthg.ops.max_pool2x2(x)``: 2x2 max-pooling, stride 2, with a backward that keeps no indices.

PyTorch's max_pool2d saves an int64 index per output element for its backward; this op saves
only its input, which the hourglass keeps anyway (the next Residual's input), and finds each
window's maximum again in backward. Same values and gradients as ``F.max_pool2d(x, 2)``.
"""
import torch
import torch.nn.functional as F

from .. import dispatch
from .launch import channels_last, empty_nhwc, launch_pixel_tiles
from .validate import check_int32_addressable, check_nonempty, check_tensor

KERNEL_LAUNCHES = {"forward": 1, "backward": 1}


@torch.library.custom_op("fasthg::max_pool2x2", mutates_args=())
def _max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    out = empty_nhwc(n, c, h // 2, w // 2, like=x)
    launch_pixel_tiles("max_pool2x2_forward", (channels_last(x), out), x.shape, out.numel() // c)
    return out


@_max_pool2x2.register_fake
def _(x):
    n, c, h, w = x.shape
    return empty_nhwc(n, c, h // 2, w // 2, like=x)


@torch.library.custom_op("fasthg::max_pool2x2_backward", mutates_args=())
def _max_pool2x2_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    odd = h % 2 or w % 2  # the trailing row or column no window covers gets zero
    grad_x = (torch.zeros_like if odd else torch.empty_like)(x, memory_format=torch.channels_last)
    launch_pixel_tiles("max_pool2x2_backward", (channels_last(grad), channels_last(x), grad_x), x.shape, grad.numel() // c)
    return grad_x


@_max_pool2x2_backward.register_fake
def _(grad, x):
    return torch.empty_like(x, memory_format=torch.channels_last)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return _max_pool2x2_backward(grad, x)


_max_pool2x2.register_autograd(_backward, setup_context=_setup_context)


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling with stride 2 of x (N, C, H, W), NCHW or channels_last.

    Fused (see :func:`fasthg.dispatch.runs_fused`): the custom op, returning channels_last.
    Otherwise ``F.max_pool2d(x, 2)`` itself.
    """
    check_tensor("x", x, 4, layout="(N, C, H, W)")
    if x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"x: expected height and width >= 2 to pool 2x2, got shape {tuple(x.shape)}")
    check_nonempty("x", x)
    check_int32_addressable("x", x.shape)
    return _max_pool2x2(x) if dispatch.runs_fused(x) else F.max_pool2d(x, 2)
