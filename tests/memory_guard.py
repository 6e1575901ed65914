"""A bounds-checking Triton interpreter for tests: every load, store and atomic a kernel makes
(where its mask is on) must fall inside one of the tensors passed to that launch, and no 32-bit
integer arithmetic may overflow (the interpreter's own check, off elsewhere in the suite:
tests/interpreter_patching.py).

The interpreter itself checks nothing (docs/without_a_gpu.md): an out-of-range load returns
garbage, an out-of-range store corrupts whatever lies there. ``BoundsChecker`` wraps the launch (to learn the
tensors' address ranges) and the interpreter's memory operations (to check every address).
"""
import numpy as np
import torch
from triton.runtime import interpreter

from interpreter_patching import check_overflow


def _span(t):
    """[first, end) byte addresses of the elements of tensor ``t``."""
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()


class BoundsChecker:
    """Within the block, records every masked-on memory access of a kernel outside its tensors."""

    MEMORY_OPS = ("create_masked_load", "create_masked_store", "create_atomic_rmw", "create_atomic_cas")

    def __init__(self):
        self.violations, self.accesses, self.ranges, self.kernel = [], 0, [], None

    def _launch(self, original):
        checker = self

        def launch(executor, *args, **kwargs):
            tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.numel()]
            checker.ranges, checker.kernel = [_span(t) for t in tensors], executor.fn.__name__
            return original(executor, *args, **kwargs)

        return launch

    def _check(self, kind, ptrs, mask):
        addresses = ptrs.data if mask is None else ptrs.data[np.broadcast_to(mask.data, ptrs.data.shape)]
        addresses = addresses.astype(np.uint64).ravel()
        size = ptrs.get_element_ty().primitive_bitwidth // 8
        inside = np.zeros(addresses.shape, dtype=bool)
        for first, end in self.ranges:
            inside |= (addresses >= first) & (addresses + size <= end)
        self.accesses += addresses.size
        if not inside.all():
            self.violations.append(f"{self.kernel}: {kind} of {int((~inside).sum())} element(s) outside its tensors")

    def __enter__(self):
        self.overflow_checked = check_overflow(True)
        builder = interpreter.interpreter_builder
        self.originals = {name: getattr(builder, name) for name in self.MEMORY_OPS}
        self.original_launch = interpreter.GridExecutor.__call__
        interpreter.GridExecutor.__call__ = self._launch(self.original_launch)
        load, store = self.originals["create_masked_load"], self.originals["create_masked_store"]
        rmw, cas = self.originals["create_atomic_rmw"], self.originals["create_atomic_cas"]

        def masked_load(ptrs, mask, *rest):
            self._check("load", ptrs, mask)
            return load(ptrs, mask, *rest)

        def masked_store(ptrs, value, mask, *rest):
            self._check("store", ptrs, mask)
            return store(ptrs, value, mask, *rest)

        def atomic_rmw(op, ptr, val, mask, *rest):
            self._check("atomic", ptr, mask)
            return rmw(op, ptr, val, mask, *rest)

        def atomic_cas(ptr, cmp, val, *rest):
            self._check("atomic", ptr, None)
            return cas(ptr, cmp, val, *rest)

        builder.create_masked_load, builder.create_masked_store = masked_load, masked_store
        builder.create_atomic_rmw, builder.create_atomic_cas = atomic_rmw, atomic_cas
        return self

    def __exit__(self, *exc):
        builder = interpreter.interpreter_builder
        for name in self.MEMORY_OPS:
            delattr(builder, name)  # back to the class's methods
        interpreter.GridExecutor.__call__ = self.original_launch
        check_overflow(self.overflow_checked)
