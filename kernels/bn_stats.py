"""Batch-norm statistics and the last step of BN's backward, for tensors no producer's epilogue covers
(a Residual used alone, or fed by a module that reduces no statistics).

Layout: NHWC activations addressed as [M, C] (M = N * H * W rows, row stride C).

:func:`channel_stats_kernel` (forward, training): per channel, mean and biased variance of x
over its M rows, and the running-statistics update of nn.BatchNorm2d. Each program reduces a
[BLOCK_M, BLOCK_C] tile to centred moments (fp32, fp64 for fp64 x), combined up a reduction tree
per channel block (helpers.reduce_moments). x is read once; nothing is written but 2C numbers and
the partials.

:func:`bn_backward_apply_kernel` (backward): the input gradient of the Residual,

    dx = weight * rstd * (g - sum(g) / M - xhat * sum(g * xhat) / M)  (+ extra)  (+ through)

where g = dL/d bn(x) after the ReLU mask and the two sums come from conv1's dgrad epilogue;
``extra`` is the skip branch's gradient (dL/dout for an identity skip, the skip conv's dgrad
otherwise) and, HAS_THROUGH, ``through`` the gradient of x from its other consumers (reaching
them through the Residual's pass-through of x), both added here rather than in separate passes.
"""
import triton
import triton.language as tl

from .helpers import bn_backward, grid_moments, widen


@triton.jit
def channel_stats_kernel(
    x_ptr, part_mean_ptr, part_m2_ptr, counter_ptr,
    mean_ptr, var_ptr, running_mean_ptr, running_var_ptr,
    M, C, momentum,
    UPDATE_RUNNING: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, REDUCE_GROUP: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_mask = channels < C
    x = tl.load(x_ptr + rows[:, None] * C + channels[None, :],
                mask=row_mask[:, None] & channel_mask[None, :], other=0.0)
    grid_moments(x, row_mask, channels, channel_mask, M, C, part_mean_ptr, part_m2_ptr, counter_ptr,
                 mean_ptr, var_ptr, running_mean_ptr, running_var_ptr, momentum, UPDATE_RUNNING, BLOCK_M, REDUCE_GROUP)


@triton.jit
def bn_backward_apply_kernel(
    grad_ptr, x_ptr, mean_ptr, var_ptr, weight_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
    extra_ptr, through_ptr, out_ptr,
    M, C, eps,
    HAS_EXTRA: tl.constexpr, HAS_THROUGH: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_mask = channels < C
    mask = (rows < M)[:, None] & channel_mask[None, :]
    offsets = rows[:, None] * C + channels[None, :]
    grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    dx = bn_backward(grad, x, mean_ptr, var_ptr, weight_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
                     channels, channel_mask, mask, M, eps)
    if HAS_EXTRA:
        dx += widen(tl.load(extra_ptr + offsets, mask=mask, other=0.0))
    if HAS_THROUGH:
        dx += widen(tl.load(through_ptr + offsets, mask=mask, other=0.0))
    tl.store(out_ptr + offsets, dx.to(out_ptr.dtype.element_ty), mask=mask)
