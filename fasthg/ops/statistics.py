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


def new_statistics(channels, like, next_bn: Optional[NextBatchNorm]):
    """Where an op writes the statistics of its output of ``channels`` channels for ``next_bn``: mean
    then biased variance, in the accumulation dtype of ``like``; None without ``next_bn``.

    The caller allocates it and the op fills it (a mutated argument, not an output: autograd would
    materialise a zero gradient for a statistics output, a fill launch per producer)."""
    if next_bn is None:
        return None
    return torch.empty(2 * channels, dtype=accumulation_dtype(like.dtype), device=like.device)


def statistics_for(stats: Optional[torch.Tensor], running_mean: Optional[torch.Tensor],
                   running_var: Optional[torch.Tensor]):
    """The kernels' BatchStatistics of a :func:`new_statistics` buffer, or None."""
    return None if stats is None else BatchStatistics(*stats.chunk(2), running_mean, running_var)


def chain_result(out, stats, through, next_bn: Optional[NextBatchNorm], pass_input: bool):
    """What an op or module in a chain returns (:mod:`fasthg.nn.chaining`): ``out``; (out, stats) with
    ``next_bn``; with ``pass_input`` (out, stats or None, ``through``: its input's pass-through)."""
    if pass_input:
        return out, stats, through
    return out if next_bn is None else (out, stats)
