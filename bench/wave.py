"""The wave model: the roofline corrected for launches that cannot keep every SM busy.

The roofline (:mod:`bench.roofline`) times a launch as if its work were spread perfectly over the
GPU. A GPU runs a launch's programs concurrently, each on one of SMs x R *slots*, R the programs of
that kernel configuration resident per SM (from the AOT report: occupancy x warps per SM / warps
per program). With programs of w_i tile steps each (:mod:`bench.work`), total W = sum w_i and the
longest L = max w_i, the launch takes at least

    max(W / slots, L) steps

(W / slots when its work fills every slot, L when one program outlasts the rest: no split of the
grid finishes before its longest program). The roofline time is the time of W / slots steps, so

    wave time = roofline time x max(1, L x slots / W) + launch overhead.

A launch whose programs all do equal work and number at least the slots keeps its roofline time;
a launch with a long serial tail (one program combining a thousand partial tiles) is stretched by
the tail. Aten kernels (eager PyTorch's and those around fasthg's ops) are taken as filling the
GPU. **Parallel efficiency** = roofline time ÷ wave time, per launch, per op and per step.
"""
from .resources import resident_programs
from .roofline import LAUNCH_OVERHEAD_SECONDS
from .work import longest, total_work


def stretch(classes, slots):
    """max(1, L x slots / W): how much longer than its roofline time a launch of these work classes
    takes on ``slots`` concurrent programs."""
    return max(1.0, longest(classes) * slots / total_work(classes))


class WaveModel:
    """The wave model of one :class:`bench.roofline.Gpu`, with resident programs from the AOT report."""

    def __init__(self, gpu, report):
        self.gpu = gpu
        self.resident = resident_programs(report, gpu.arch)

    def slots(self, kernel):
        if kernel.configuration not in self.resident:
            raise LookupError(f"{kernel.configuration} has no sm_{self.gpu.arch} entry in the AOT report: rebuild it (make aot)")
        return self.gpu.sms * self.resident[kernel.configuration]

    def kernel_seconds(self, kernel, dtype):
        """The wave time of one :class:`bench.counting.Kernel` (its roofline time for an aten kernel)."""
        busy = self.gpu.busy_seconds(kernel, dtype)
        if kernel.triton:
            busy *= stretch(kernel.work, self.slots(kernel))
        return busy + LAUNCH_OVERHEAD_SECONDS

    def step_seconds(self, kernels, dtype):
        return sum(self.kernel_seconds(kernel, dtype) for kernel in kernels)
