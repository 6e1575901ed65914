"""One launch for the step counters of every fused BatchNorm in a model's training forward.

nn.BatchNorm2d adds 1 to its ``num_batches_tracked`` in each training forward: a launch per BN,
115 in the Residuals and heads of an 8-stack network. A fasthg module that takes part lists the
BNs whose counters its fused code updates in ``fused_batch_norms()`` (a container with none of
its own lists none). The outermost one to run adds 1 to the counters of every taking part module
below it that is in training mode, with one ``torch._foreach_add_``, and marks those modules as
counted until its forward returns, so they skip their own counting. The mark is an attribute of
each module, not a global: models running in other threads (nn.DataParallel's replicas) are not
affected. A plain nn.BatchNorm2d, such as the stem's, still counts itself.
"""
import torch


def count_step(batch_norms):
    """num_batches_tracked += 1 for each BN that tracks running statistics, in one launch."""
    counters = [bn.num_batches_tracked for bn in batch_norms if bn.num_batches_tracked is not None]
    if counters:
        torch._foreach_add_(counters, 1)


def forward_counting_steps(module, fused, forward, *args):
    """``forward(*args)``, counting a training step first in every fused BN under ``module``.

    ``fused`` says whether the fused kernels will run (on PyTorch's path each nn.BatchNorm2d
    counts itself).
    """
    if not (module.training and fused) or getattr(module, "_steps_counted", False):
        return forward(*args)
    taking_part = [child for child in module.modules() if child.training and hasattr(child, "fused_batch_norms")]
    count_step(bn for child in taking_part for bn in child.fused_batch_norms())
    for child in taking_part:
        child._steps_counted = True
    try:
        return forward(*args)
    finally:
        for child in taking_part:
            child._steps_counted = False


def running_stats_momentum(bn):
    """The running-statistics factor nn.BatchNorm2d uses this step, its step already counted."""
    if bn.momentum is None:
        return 1.0 / float(bn.num_batches_tracked)
    return bn.momentum
