"""What a block of PyTorch code would run on a GPU, counted exactly with a ``TorchDispatchMode``.

:class:`KernelCounter` records one :class:`Kernel` per launch:

* an aten op launches one kernel (a lower bound: cuDNN's convolution backward alone runs a dgrad
  and a wgrad kernel, a BatchNorm may run two); views and allocations launch none;
* a fasthg custom op (``fasthg::...``) launches the Triton kernels its implementation launches. On
  the meta device PyTorch would run the op's fake implementation, which launches nothing, so the
  counter runs the real implementation instead, with every Triton launch recorded and, on meta
  tensors, not run (:mod:`bench.launches`). The aten ops inside it (a ``torch.cat`` of weights, a
  dtype conversion) count as kernels too. Each call's Triton launches must equal the op's declared
  ``KERNEL_LAUNCHES`` (:mod:`bench.declared`), or the count stops with an error.

Bytes and FLOPs of each kernel come from :mod:`bench.traffic`; a Triton launch also records the
work of its programs (:mod:`bench.work`) and its registry configuration, for the wave model
(:mod:`bench.wave`). :class:`SavedActivations` measures what autograd keeps for backward.
"""
from dataclasses import dataclass

import torch
from torch._library.custom_ops import OPDEFS
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .declared import declared_variant
from .launches import recording_launches
from .traffic import aten_bytes, aten_flops, triton_bytes, triton_flops
from .resources import configuration
from .work import program_work

ALLOCATIONS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view"}


@dataclass(frozen=True)
class Kernel:
    """One GPU kernel launch: the op that made it (``aten::relu``, ``fasthg::head_backward``), the
    kernel (the aten op itself, or a Triton kernel's name), bytes moved, FLOPs, and whether it is
    Triton's; a Triton launch's programs as :class:`bench.work.WorkClass` es and its registry
    configuration's label."""
    op: str
    kernel: str
    bytes: int
    flops: int
    triton: bool = False
    work: tuple = ()
    configuration: str = ""

    @property
    def label(self):
        """``op`` for a plain aten op, ``op / kernel`` for what a fasthg op launches."""
        return self.op if self.op == self.kernel else f"{self.op} / {self.kernel}"


@dataclass(frozen=True)
class CustomOpCall:
    """A fasthg op call: the module declaring its launches, the variant called, the launches it
    declares and the Triton launches it made."""
    op: str
    module: str
    variant: str
    declared: int
    launched: int


class DeclarationMismatch(AssertionError):
    """A fasthg op made a different number of Triton launches than its module declares."""


def launches_nothing(func, out):
    """Views, aliases, allocations and ops whose results are all empty (autograd's zero gradient
    of an empty output): no kernel runs for them."""
    results = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
    return (func.is_view or func.overloadpacket.__name__ in ALLOCATIONS
            or bool(results) and all(t.numel() == 0 for t in results))


def _qualified(func):
    return f"{func.namespace}::{func.overloadpacket.__name__}"


class KernelCounter(TorchDispatchMode):
    """Records the kernels the code in its block launches (``kernels``) and every fasthg op call (``calls``).

    ``execute``: run the Triton kernels (CPU tensors in the interpreter); leave it False on meta tensors.
    """

    def __init__(self, execute=False):
        super().__init__()
        self.execute = execute
        self.kernels = []
        self.calls = []
        self._inside = []  # the fasthg op whose implementation is running

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "fasthg":
            return self._custom_op(func, args, kwargs)
        if torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
            # Inside a custom op, composite ops (``.to``, ``.contiguous``) arrive undecomposed:
            # count what they decompose into (a copy, or nothing).
            with self:
                return func.decompose(*args, **kwargs)
        out = func(*args, **kwargs)
        if not launches_nothing(func, out):
            op = self._inside[-1] if self._inside else _qualified(func)
            self.kernels.append(Kernel(op, _qualified(func), aten_bytes(args, kwargs, out), aten_flops(func, args, kwargs, out)))
        return out

    def _custom_op(self, func, args, kwargs):
        name = func._schema.name
        first = len(self.kernels)
        self._inside.append(name)
        try:
            with self, recording_launches(self._record_launch, run=self.execute):
                out = OPDEFS[name]._init_fn(*args, **kwargs)
        finally:
            self._inside.pop()
        launched = sum(kernel.triton for kernel in self.kernels[first:])
        module, variant = declared_variant(func, args, kwargs)
        call = CustomOpCall(name, module.__name__, variant, module.KERNEL_LAUNCHES[variant], launched)
        self.calls.append(call)
        if call.launched != call.declared:
            raise DeclarationMismatch(f"{name} ({variant}) made {launched} Triton launches; "
                                      f"{call.module}.KERNEL_LAUNCHES[{variant!r}] declares {call.declared}")
        return out

    def _record_launch(self, launch):
        arguments = launch.arguments
        self.kernels.append(Kernel(self._inside[-1], launch.kernel, triton_bytes(launch.kernel, arguments),
                                   triton_flops(launch.kernel, arguments), triton=True, work=program_work(launch),
                                   configuration=configuration(launch)))


class SavedActivations(torch.autograd.graph.saved_tensors_hooks):
    """Bytes of the tensors autograd saves for backward in the block (``bytes``), each storage
    once, leaving out ``excluded`` tensors (a model's parameters and buffers: state, not activations).

    Backward only frees saved tensors, so what a forward saves is the peak of what is kept.
    """

    def __init__(self, excluded=()):
        self._excluded = {t.untyped_storage()._cdata for t in excluded}
        self._saved = {}
        super().__init__(self._pack, lambda tensor: tensor)

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in self._excluded:
            self._saved[storage._cdata] = storage.nbytes()
        return tensor

    @property
    def bytes(self):
        return sum(self._saved.values())


class LaunchRecorder(KernelCounter):
    """A :class:`KernelCounter` that also keeps each Triton launch with its arguments (``launches``,
    what the AOT build specialises for). Kept apart from the counter: holding a launch's tensors
    keeps its outputs alive, and autograd then copies a gradient it would otherwise take over,
    which the counter would count as a kernel."""

    def __init__(self):
        super().__init__()
        self.launches = []

    def _record_launch(self, launch):
        self.launches.append(launch)
        super()._record_launch(launch)
