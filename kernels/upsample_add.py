"""Nearest x2 upsampling fused with the skip addition of the hourglass, and its backward.

Forward, for output (N, C, H, W) with H = 2h, W = 2w::

    out[n, c, y, x] = skip[n, c, y, x] + low[n, c, y // 2, x // 2]

and, STATS, the batch mean and biased variance of out per channel (of the values as stored), for
the fused BN that normalises out next, with that BN's running statistics updated
(helpers.grid_moments: centred partials per pixel tile combined up a reduction tree).

Backward, with g = dL/dout::

    grad_skip = g                                   (no kernel: autograd passes g through)
    grad_low[n, c, i, j] = sum_{dy, dx in {0, 1}} g[n, c, 2i + dy, 2j + dx]   (2x2 sum-pool)

The upsampled tensor never exists in memory: each output element reads one skip and one low
element. Tensors are NHWC-contiguous (channels_last), addressed as [pixels, C] matrices with
int32 offsets; programs tile (pixels, channels), so loads and stores run along contiguous
channel vectors. Sums are formed in fp32 (fp64 for fp64 tensors) and rounded once.
"""
import triton
import triton.language as tl

from .helpers import grid_moments, widen


@triton.jit
def upsample_add_forward_kernel(
    low_ptr, skip_ptr, out_ptr, N, C, H, W,
    part_mean_ptr, part_m2_ptr, counter_ptr, mean_ptr, var_ptr, running_mean_ptr, running_var_ptr, momentum,
    STATS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, REDUCE_GROUP: tl.constexpr,
):
    pixels = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (pixels < N * H * W)[:, None] & (channels < C)[None, :]
    n = pixels // (H * W)
    low_pixels = (n * (H // 2) + (pixels // W) % H // 2) * (W // 2) + pixels % W // 2
    offsets = pixels[:, None] * C + channels[None, :]
    low = tl.load(low_ptr + low_pixels[:, None] * C + channels[None, :], mask=mask)
    skip = tl.load(skip_ptr + offsets, mask=mask)
    out = (widen(skip) + widen(low)).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + offsets, out, mask=mask)
    if STATS:
        grid_moments(out, pixels < N * H * W, channels, channels < C, N * H * W, C, part_mean_ptr, part_m2_ptr,
                     counter_ptr, mean_ptr, var_ptr, running_mean_ptr, running_var_ptr, momentum, True, BLOCK_P,
                     REDUCE_GROUP)


@triton.jit
def upsample_add_backward_kernel(
    grad_ptr, grad_low_ptr, N, C, h, w,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pixels = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (pixels < N * h * w)[:, None] & (channels < C)[None, :]
    n = pixels // (h * w)
    corner = (n * (2 * h) + 2 * ((pixels // w) % h)) * (2 * w) + 2 * (pixels % w)
    top_left = grad_ptr + corner[:, None] * C + channels[None, :]
    total = widen(tl.load(top_left, mask=mask))
    total += widen(tl.load(top_left + C, mask=mask))
    total += widen(tl.load(top_left + 2 * w * C, mask=mask))
    total += widen(tl.load(top_left + 2 * w * C + C, mask=mask))
    tl.store(grad_low_ptr + pixels[:, None] * C + channels[None, :], total.to(grad_low_ptr.dtype.element_ty), mask=mask)
