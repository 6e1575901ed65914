"""Batch statistics handed from the op that writes a tensor to the fused BN that normalises it next.

In a model, every tensor that a Residual's bn1 normalises is written by a fused op (another
Residual's conv3, upsample-add, the 2x2 max-pool, the stack head's merge). That op reduces the
tensor's per-channel mean and biased variance in its epilogue, as it writes it, and updates the
consuming BN's running statistics there, exactly as nn.BatchNorm2d would; the consumer then reads
finished statistics instead of making a pass over the tensor (``channel_stats``). A module used
alone, or fed by anything else, computes its own.
"""
from typing import NamedTuple, Optional

import torch

from .launch import accumulation_dtype


class NextBatchNorm(NamedTuple):
    """The BN that normalises an op's output next, as the op's epilogue needs it: the running
    statistics it updates, and this step's momentum (nn.BatchNorm2d's factor)."""
    running_mean: torch.Tensor
    running_var: torch.Tensor
    momentum: float


class BatchStatistics(NamedTuple):
    """Where a kernel writes the batch statistics it reduces, and the running ones it updates."""
    mean: torch.Tensor
    var: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor


def output_statistics(channels, like, running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor]):
    """(stats, BatchStatistics or None) for an op's output of ``channels`` channels: ``stats`` holds
    mean then biased variance in the accumulation dtype of ``like``, and is empty (None for the
    kernels) when no BN asked for them (``running_mean`` None)."""
    dtype = accumulation_dtype(like.dtype)
    if running_mean is None:
        return like.new_empty(0, dtype=dtype), None
    stats = torch.empty(2 * channels, dtype=dtype, device=like.device)
    return stats, BatchStatistics(*stats.chunk(2), running_mean, running_var)


def statistics_shape(channels, like, running_mean: Optional[torch.Tensor]):
    """The fake (meta) ``stats`` of :func:`output_statistics`."""
    return like.new_empty(2 * channels if running_mean is not None else 0, dtype=accumulation_dtype(like.dtype))
