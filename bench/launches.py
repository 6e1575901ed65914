"""Every Triton kernel launch, seen where it happens: ``kernel[grid](*args, **kwargs)``.

Triton launches a kernel through ``KernelInterface.__getitem__`` (compiled ``JITFunction`` and the
interpreter's ``InterpretedFunction`` alike), so replacing it for the length of a block sees every
launch of every fasthg op, whichever launcher made it. The accounting records launches on the meta
device without running them; the tests record them in the interpreter while they run.
"""
import contextlib
from typing import NamedTuple

from torch.utils._python_dispatch import _disable_current_modes
from triton.runtime.jit import KernelInterface


class TritonLaunch(NamedTuple):
    """One launch: the kernel's function name, its grid and every argument by parameter name
    (runtime arguments and constexprs alike)."""
    kernel: str
    grid: object
    arguments: dict


@contextlib.contextmanager
def recording_launches(on_launch, run):
    """Within the block, each Triton launch calls ``on_launch(TritonLaunch)``; the kernel then runs
    if ``run`` (outside any TorchDispatchMode, so the interpreter's own tensor copies count as
    nothing), and is skipped otherwise (meta tensors have no memory to run on)."""
    original = KernelInterface.__getitem__

    def launcher(kernel, grid):
        def launch(*args, **kwargs):
            on_launch(TritonLaunch(kernel.fn.__name__, grid, {**dict(zip(kernel.arg_names, args)), **kwargs}))
            if run:
                with _disable_current_modes():
                    return original(kernel, grid)(*args, **kwargs)
        return launch

    KernelInterface.__getitem__ = launcher
    try:
        yield
    finally:
        KernelInterface.__getitem__ = original
