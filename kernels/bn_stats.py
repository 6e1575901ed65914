"""Batch-norm statistics of a tensor no producer's epilogue covers (a Residual used alone, or fed by
a module that reduces no statistics).

Layout: NHWC activations addressed as [M, C] (M = N * H * W rows, row stride C).

:func:`channel_stats_kernel` (forward, training): per channel, mean and biased variance of x
over its M rows, and the running-statistics update of nn.BatchNorm2d. Each program reduces a
[BLOCK_M, BLOCK_C] tile to centred moments (fp32, fp64 for fp64 x), combined up a reduction tree
per channel block (helpers.reduce_moments). x is read once; nothing is written but 2C numbers and
the partials.
"""
import triton
import triton.language as tl

from .helpers import grid_moments


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

