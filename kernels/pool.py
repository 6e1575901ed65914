"""2x2 max-pooling (stride 2) whose backward reads a 1-byte window index instead of the input.

Forward, for x (N, C, H, W) and out (N, C, H // 2, W // 2)::

    out[n, c, i, j] = max_{dy, dx in {0, 1}} x[n, c, 2i + dy, 2j + dx]
    index[n, c, i, j] = 2 dy + dx where that maximum is (0 top-left, 1 top-right, 2 bottom-left,
                        3 bottom-right), as PyTorch's max_pool2d picks it: scanning in row-major
                        order, a value takes over when it is greater or NaN, so ties go to the
                        first and a NaN is the maximum (of several NaNs, the last)

index (int8, out's shape) only with WRITE_INDEX, for a backward to come; and, STATS, the batch
mean and biased variance of out per channel, for the fused BN that normalises out next, with its
running statistics updated (helpers.grid_moments).

Backward, with g = dL/dout::

    dx[n, c, 2i + dy, 2j + dx] = g[n, c, i, j] where 2 dy + dx = index[n, c, i, j], 0 at the
    other three positions and at a trailing odd row or column

and with HAS_THROUGH, ``through`` (the gradient of x from its other consumers, which read x
through the pool's pass-through of it) added at every position: dx = the above + through, in
the same pass (at a trailing odd row or column, which no program writes, the launcher starts dx
as a copy of through).

The index is 1 byte per pooled element, 1/8 of a bf16 input's bytes (4 elements of 2 bytes per
window): written once by the forward and read once by the backward, where re-reading x to find
each maximum again would read all of x. PyTorch's own index is int64, 8 bytes per pooled element.
NHWC-contiguous tensors, int32 offsets, (pixel, channel) tiles; a program of the backward writes
all four positions of its windows.
"""
import triton
import triton.language as tl

from .helpers import grid_moments, widen


@triton.jit
def _window(pixels, channels, C, H, W, h, w):
    """Offsets in x of the four window corners (top-left, top-right, bottom-left, bottom-right) of output pixels."""
    n = pixels // (h * w)
    top_left = (n * H + 2 * ((pixels // w) % h)) * W + 2 * (pixels % w)
    base = top_left[:, None] * C + channels[None, :]
    return base, base + C, base + W * C, base + W * C + C


@triton.jit
def _takes_over(candidate, best):
    """Whether a later element of a window replaces the maximum so far: greater, or NaN (PyTorch's
    test on CPU and CUDA, so a NaN propagates and, of several, the last one holds the maximum)."""
    return (candidate > best) | (candidate != candidate)


@triton.jit
def _take_if_greater(candidate_ptr, mask, best, argmax, corner):
    candidate = widen(tl.load(candidate_ptr, mask=mask))
    replaces = _takes_over(candidate, best)
    return tl.where(replaces, candidate, best), tl.where(replaces, corner, argmax)


@triton.jit
def _window_max(x_ptr, pixels, channels, mask, C, H, W, h, w):
    """Each window's maximum (widened: exact, and the interpreter compares bf16 wrongly) and its
    corner (0..3, row-major) by PyTorch's rule (_takes_over)."""
    o0, o1, o2, o3 = _window(pixels, channels, C, H, W, h, w)
    best = widen(tl.load(x_ptr + o0, mask=mask))
    argmax = tl.zeros(best.shape, dtype=tl.int32)
    best, argmax = _take_if_greater(x_ptr + o1, mask, best, argmax, 1)
    best, argmax = _take_if_greater(x_ptr + o2, mask, best, argmax, 2)
    best, argmax = _take_if_greater(x_ptr + o3, mask, best, argmax, 3)
    return best, argmax


@triton.jit
def _pooled_tile(N, C, H, W, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's output pixels and channels, their mask, and the output size (h, w)."""
    h = H // 2
    w = W // 2
    pixels = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (pixels < N * h * w)[:, None] & (channels < C)[None, :]
    return pixels, channels, mask, h, w


@triton.jit
def _at_pooled(ptr, pixels, channels, C):
    """Pointers to output pixels and channels in a tensor of out's shape (out, the index, g).
    Each term is added to the pointer, not summed first: with the int32 sum, ptxas held the fp32
    STATS forward to 64 registers on sm_80 and spilled 8 bytes; this way it takes 72 and spills none."""
    return ptr + pixels[:, None] * C + channels[None, :]


@triton.jit
def max_pool2x2_forward_kernel(
    x_ptr, out_ptr, index_ptr, N, C, H, W,
    part_mean_ptr, part_m2_ptr, counter_ptr, mean_ptr, var_ptr, running_mean_ptr, running_var_ptr, momentum,
    STATS: tl.constexpr, WRITE_INDEX: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    REDUCE_GROUP: tl.constexpr,
):
    pixels, channels, mask, h, w = _pooled_tile(N, C, H, W, BLOCK_P, BLOCK_C)
    best, argmax = _window_max(x_ptr, pixels, channels, mask, C, H, W, h, w)
    tl.store(_at_pooled(out_ptr, pixels, channels, C), best.to(out_ptr.dtype.element_ty), mask=mask)
    if WRITE_INDEX:
        tl.store(_at_pooled(index_ptr, pixels, channels, C), argmax.to(tl.int8), mask=mask)
    if STATS:  # a window's maximum is one of its elements: its widened value is the value stored
        grid_moments(best, pixels < N * h * w, channels, channels < C, N * h * w, C, part_mean_ptr, part_m2_ptr,
                     counter_ptr, mean_ptr, var_ptr, running_mean_ptr, running_var_ptr, momentum, True, BLOCK_P,
                     REDUCE_GROUP)


@triton.jit
def _store_corner_grad(grad_x_ptr, through_ptr, offsets, is_max, grad, mask, HAS_THROUGH: tl.constexpr):
    """dx at one corner of each window: g where the window's maximum is, else 0 (+ through there)."""
    dx = tl.where(is_max, widen(grad), 0.0)
    if HAS_THROUGH:
        dx += widen(tl.load(through_ptr + offsets, mask=mask))
    tl.store(grad_x_ptr + offsets, dx.to(grad_x_ptr.dtype.element_ty), mask=mask)


@triton.jit
def max_pool2x2_backward_kernel(grad_ptr, index_ptr, through_ptr, grad_x_ptr, N, C, H, W,
                                HAS_THROUGH: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pixels, channels, mask, h, w = _pooled_tile(N, C, H, W, BLOCK_P, BLOCK_C)
    grad = tl.load(_at_pooled(grad_ptr, pixels, channels, C), mask=mask)
    index = tl.load(_at_pooled(index_ptr, pixels, channels, C), mask=mask)
    o0, o1, o2, o3 = _window(pixels, channels, C, H, W, h, w)
    _store_corner_grad(grad_x_ptr, through_ptr, o0, index == 0, grad, mask, HAS_THROUGH)
    _store_corner_grad(grad_x_ptr, through_ptr, o1, index == 1, grad, mask, HAS_THROUGH)
    _store_corner_grad(grad_x_ptr, through_ptr, o2, index == 2, grad, mask, HAS_THROUGH)
    _store_corner_grad(grad_x_ptr, through_ptr, o3, index == 3, grad, mask, HAS_THROUGH)
