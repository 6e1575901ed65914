"""One launch for the step counters of every fused BatchNorm in a model's training forward.

nn.BatchNorm2d adds 1 to its ``num_batches_tracked`` in each training forward: a launch per BN,
115 in the Residuals and heads of an 8-stack network. A fasthg container instead adds 1 to all
the counters below it with one ``torch._foreach_add_`` and runs its forward with the steps
marked as counted, so the fused modules inside skip their own counting. Only counters that fused
code updates are gathered (modules list them in ``fused_batch_norms()``); a plain
nn.BatchNorm2d, such as the stem's, still counts itself, so no step is counted twice.
"""
import torch

_counted = False


def steps_counted():
    """True inside a container's :func:`forward_counting_steps`: fused modules must not count again."""
    return _counted


def count_step(batch_norms):
    """num_batches_tracked += 1 for each BN that tracks running statistics, in one launch."""
    counters = [bn.num_batches_tracked for bn in batch_norms if bn.num_batches_tracked is not None]
    if counters:
        torch._foreach_add_(counters, 1)


def forward_counting_steps(module, fused, forward, *args):
    """``forward(*args)``, counting a training step first in every fused BN under ``module``.

    ``fused`` says whether the fused kernels will run (on PyTorch's path each nn.BatchNorm2d
    counts itself). A plain global flag, not a context manager, so torch.compile traces it
    without a graph break.
    """
    global _counted
    if not (module.training and fused) or _counted:
        return forward(*args)
    count_step(bn for child in module.modules() if hasattr(child, "fused_batch_norms")
               for bn in child.fused_batch_norms())
    _counted = True
    try:
        return forward(*args)
    finally:
        _counted = False


def running_stats_momentum(bn):
    """The running-statistics factor nn.BatchNorm2d uses this step, its step already counted."""
    if bn.momentum is None:
        return 1.0 / float(bn.num_batches_tracked)
    return bn.momentum
