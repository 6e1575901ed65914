"""One launch for the step counters of every fused BatchNorm in a model's training forward.

nn.BatchNorm2d adds 1 to its ``num_batches_tracked`` in each training forward: a launch per BN,
115 in the Residuals and heads of an 8-stack network. A fasthg module that takes part lists the
BNs whose counters its fused code updates in ``fused_batch_norms()`` (a container with none of
its own lists none) and calls :func:`count_step_of` where nn.BatchNorm2d would count. The
outermost one to run (:func:`forward_counting_steps`) hands the members below it a collector for
the duration of its forward; members that run in training put their counters in it, and it adds
1 to all of them with one ``torch._foreach_add_`` when its forward ends (whether it returns or
raises, as the BNs that ran would have counted).

The list of members is gathered once per container (walking an 8-stack model's 1,700 modules
takes milliseconds of Python; a shallow copy gathers its own) and never needs to be exact: a
member added later holds no collector and counts itself; one removed never runs, so it puts
nothing in. The collector is an attribute of each member, not a global: models in other threads
(nn.DataParallel's replicas) or run from a hook count their own steps. A plain nn.BatchNorm2d,
such as the stem's, counts itself.
"""
import torch


def count_step(batch_norms):
    """num_batches_tracked += 1 for each BN that tracks running statistics, in one launch."""
    counters = [bn.num_batches_tracked for bn in batch_norms if bn.num_batches_tracked is not None]
    if counters:
        torch._foreach_add_(counters, 1)


def count_step_of(module, batch_norms=None):
    """Counts a training step of ``module``'s fused BNs (or of ``batch_norms``, some of them): now,
    or with its container's launch.

    Returns how many steps are still pending on the counters (0 or 1), for
    :func:`running_stats_momentum`.
    """
    batch_norms = module.fused_batch_norms() if batch_norms is None else batch_norms
    collector = getattr(module, "_step_collector", None)
    if collector is None:
        count_step(batch_norms)
        return 0
    collector.extend(batch_norms)
    return 1


def _members(module):
    """``module`` and the modules below it that take part, gathered on first use (see the module docstring)."""
    members = getattr(module, "_step_counting_members", None)
    if members is None or members[0] is not module:  # not yet, or a shallow copy's (nn.DataParallel's replicas)
        members = [child for child in module.modules() if hasattr(child, "fused_batch_norms")]
        module._step_counting_members = members
    return members


def forward_counting_steps(module, fused, forward, *args):
    """``forward(*args)``, the training steps of the fused BNs below ``module`` counted in one launch.

    ``fused`` says whether the fused kernels will run (on PyTorch's path each nn.BatchNorm2d
    counts itself).
    """
    if not (module.training and fused) or getattr(module, "_step_collector", None) is not None:
        return forward(*args)
    collector = []
    members = _members(module)
    for member in members:
        member._step_collector = collector
    try:
        return forward(*args)
    finally:
        for member in members:
            member._step_collector = None
        count_step(collector)


def running_stats_momentum(bn, pending):
    """The running-statistics factor nn.BatchNorm2d uses this step, with ``pending`` (0 or 1)
    counts of this step not yet added to ``bn.num_batches_tracked``."""
    if bn.momentum is None:
        return 1.0 / (float(bn.num_batches_tracked) + pending)
    return bn.momentum
