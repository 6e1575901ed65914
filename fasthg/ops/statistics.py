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


def check_next_bn(next_bn, channels):
    """TypeError/ValueError unless ``next_bn`` is None or a NextBatchNorm of ``channels`` running statistics."""
    if next_bn is None:
        return
    if not isinstance(next_bn, NextBatchNorm):
        raise TypeError(f"next_bn: expected None or a fasthg.ops.statistics.NextBatchNorm, got {type(next_bn).__name__}")
    for name in ("running_mean", "running_var"):
        tensor = getattr(next_bn, name)
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != (channels,):
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"next_bn: expected {name} of shape ({channels},), one per output channel, got {got}")


def check_x_stats(x_stats, channels):
    """TypeError/ValueError unless ``x_stats`` is None or a tensor of 2 x ``channels`` statistics (mean, then var)."""
    if x_stats is None:
        return
    if not isinstance(x_stats, torch.Tensor):
        raise TypeError(f"x_stats: expected None or a torch.Tensor, got {type(x_stats).__name__}")
    if tuple(x_stats.shape) != (2 * channels,):
        raise ValueError(f"x_stats: expected shape ({2 * channels},), the mean then the biased variance of each of "
                         f"x's {channels} channels, got {tuple(x_stats.shape)}")


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
