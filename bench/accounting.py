"""Exact accounting of both sides on the meta device: kernels, bytes, FLOPs, saved activations.

No data and no GPU: the networks run on meta tensors at full size, fasthg's custom ops with their
Triton launches recorded (the GPU tiles of sm_80/sm_90, which share their configurations) and
not run. See :mod:`bench.counting` for what counts as a kernel and :mod:`bench.traffic` for bytes.
"""
from typing import NamedTuple

from fasthg.kernels import registry

from .counting import KernelCounter, LaunchRecorder, SavedActivations
from .workloads import WORKLOADS, build, inputs

GPU_ARCH = 90


class Account(NamedTuple):
    """The kernels one side launches in a workload, and the bytes of activations it keeps for backward."""
    kernels: list
    saved_bytes: int


def _prepared(config, workload, side):
    """(``side``'s network on meta in ``workload``'s mode, its inputs, the step) at ``config``."""
    model = build(config, "meta")[side]
    training, step = WORKLOADS[workload]
    return model.train(training), inputs(config, "meta"), step


def account(config, workload, side):
    """The :class:`Account` of ``side`` ('eager' or 'fasthg') running ``workload`` at ``config``.

    The step runs twice and the second is counted: the first allocates what a process allocates
    once (fasthg's zeroed arrival counters), which a training loop does not pay per step.
    """
    model, (images, target), step = _prepared(config, workload, side)
    state = [*model.parameters(), *model.buffers()]
    for _ in range(2):
        counter, saved = KernelCounter(), SavedActivations(excluded=state)
        with registry.emulating(GPU_ARCH), counter, saved:
            step(model, images, target)
    return Account(counter.kernels, saved.bytes)


def triton_launches(config, workload):
    """Every Triton launch (:class:`bench.launches.TritonLaunch`) fasthg makes in ``workload`` at
    ``config``, recorded on the meta device with the GPU tiles and not run."""
    model, (images, target), step = _prepared(config, workload, "fasthg")
    recorder = LaunchRecorder()
    with registry.emulating(GPU_ARCH), recorder:
        step(model, images, target)
    return recorder.launches
