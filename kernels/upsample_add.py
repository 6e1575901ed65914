"""Nearest x2 upsampling fused with the skip addition of the hourglass, and its backward.

Forward, for output (N, C, H, W) with H = 2h, W = 2w::

    out[n, c, y, x] = skip[n, c, y, x] + low[n, c, y // 2, x // 2]

Backward, with g = dL/dout::

    grad_skip = g                                   (no kernel: autograd passes g through)
    grad_low[n, c, i, j] = sum_{dy, dx in {0, 1}} g[n, c, 2i + dy, 2j + dx]   (2x2 sum-pool)

The upsampled tensor never exists in memory: each output element reads one skip and one low
element. Programs tile (pixels, channels); tensors are addressed through their strides, so any
layout works, and channels_last (NHWC) gives contiguous channel vectors. Sums are formed in
fp32 (fp64 for fp64 tensors) and rounded once to the output dtype.
"""
import triton
import triton.language as tl

from .helpers import widen


@triton.jit
def upsample_add_forward_kernel(
    low_ptr, skip_ptr, out_ptr,
    N, C, H, W,
    low_sn, low_sc, low_sh, low_sw,
    skip_sn, skip_sc, skip_sh, skip_sw,
    out_sn, out_sc, out_sh, out_sw,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pixels = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = pixels // (H * W)
    y = (pixels // W) % H
    x = pixels % W
    mask = (pixels < N * H * W)[:, None] & (channels < C)[None, :]
    c = channels[None, :]
    low = tl.load(low_ptr + (n * low_sn + (y // 2) * low_sh + (x // 2) * low_sw)[:, None] + c * low_sc, mask=mask)
    skip = tl.load(skip_ptr + (n * skip_sn + y * skip_sh + x * skip_sw)[:, None] + c * skip_sc, mask=mask)
    out = widen(skip) + widen(low)
    tl.store(out_ptr + (n * out_sn + y * out_sh + x * out_sw)[:, None] + c * out_sc,
             out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def upsample_add_backward_kernel(
    grad_ptr, grad_low_ptr,
    N, C, h, w,
    grad_sn, grad_sc, grad_sh, grad_sw,
    low_sn, low_sc, low_sh, low_sw,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pixels = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = pixels // (h * w)
    i = (pixels // w) % h
    j = pixels % w
    mask = (pixels < N * h * w)[:, None] & (channels < C)[None, :]
    corner = grad_ptr + (n * grad_sn + (2 * i) * grad_sh + (2 * j) * grad_sw)[:, None] + channels[None, :] * grad_sc
    total = widen(tl.load(corner, mask=mask))
    total += widen(tl.load(corner + grad_sw, mask=mask))
    total += widen(tl.load(corner + grad_sh, mask=mask))
    total += widen(tl.load(corner + grad_sh + grad_sw, mask=mask))
    tl.store(grad_low_ptr + (n * low_sn + i * low_sh + j * low_sw)[:, None] + channels[None, :] * low_sc,
             total.to(grad_low_ptr.dtype.element_ty), mask=mask)
