"""Fused modules chained through the batch statistics of the tensors between them.

A container that runs fused modules one after another lets each one that writes a tensor reduce
that tensor's statistics for the Residual that normalises it next (:mod:`fasthg.ops.statistics`):
a module taking part accepts ``next_bn`` (and returns (out, stats) when given one), and a consumer
says through ``input_batch_norm()`` whether its first BN wants them.
"""
from ..ops.statistics import NextBatchNorm
from .step_counting import running_stats_momentum


def next_batch_norm(bn):
    """``bn`` as the op writing its input sees it. The momentum counts this step as pending: the
    step counters of the module that owns ``bn`` are added when it runs, or by its container after
    the forward, both after the op that writes its input (:mod:`fasthg.nn.step_counting`)."""
    return NextBatchNorm(bn.running_mean, bn.running_var, running_stats_momentum(bn, 1))


def chained(module, *args, consumer):
    """``module(*args)``, and the statistics of its output reduced for ``consumer``'s first BN when
    that BN wants them: (out, stats or None)."""
    next_bn = consumer.input_batch_norm()
    if next_bn is None:
        return module(*args), None
    return module(*args, next_bn=next_bn)
