"""Which implementation an op runs: compiled Triton kernels, the interpreter, or plain torch.

``auto`` runs compiled Triton kernels on CUDA tensors and the torch path on CPU tensors.
``triton`` always runs the kernels; on CPU tensors that needs the Triton interpreter, which
reads ``TRITON_INTERPRET=1`` when the kernels are defined, i.e. before fasthg is imported.
``torch`` always runs the torch path. The env var ``FASTHG_BACKEND`` sets the initial choice.
"""
import os
import sys

import torch

BACKENDS = ("auto", "triton", "torch")


def _checked(name):
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    return name


_current = _checked(os.environ.get("FASTHG_BACKEND", "auto"))


def get_backend() -> str:
    """The backend in force: 'auto', 'triton' or 'torch'."""
    return _current


def set_backend(name: str) -> str:
    """Select the backend for every later op call; returns the previous one."""
    global _current
    previous, _current = _current, _checked(name)
    return previous


class backend:
    """Context manager that selects a backend for its block: ``with fasthg.backend("triton"): ...``."""

    def __init__(self, name: str) -> None:
        self.name = _checked(name)

    def __enter__(self) -> "backend":
        self.previous = set_backend(self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        set_backend(self.previous)


def interpreting():
    """True when Triton kernels were defined for the interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def rerun(module, interpret):
    """Replaces this process with ``python -m module`` and the same arguments, TRITON_INTERPRET set
    to 1 when ``interpret`` and unset otherwise: it is read when the kernels are defined, at
    import, so a command that needs the other setting cannot switch it in place."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)


def use_triton(tensor):
    """Whether an op on ``tensor`` should launch its Triton kernels.

    Raises a RuntimeError when the triton backend is forced on CPU tensors without the
    interpreter, since compiled kernels cannot read host memory.
    """
    if _current == "torch" or tensor.device.type == "meta":
        return False
    if tensor.is_cuda and tensor.dtype == torch.float64:
        if _current == "auto":
            return False  # fp64 on a GPU runs PyTorch's kernels: the fused fp64 tiles spill (kernels/registry.py)
        raise RuntimeError("backend 'triton' has no compiled kernels for float64 on a GPU (its tiles spill "
                           "registers); use backend 'auto' or 'torch', which run PyTorch's float64 kernels there")
    if _current == "auto":
        return tensor.is_cuda
    if not tensor.is_cuda and not interpreting():
        raise RuntimeError(
            "backend 'triton' on CPU tensors runs the Triton interpreter: set TRITON_INTERPRET=1 "
            "in the environment before importing fasthg, or use backend 'auto' or 'torch'"
        )
    return True


def runs_fused(tensor):
    """Whether an op on ``tensor`` runs fasthg's fused custom ops: on the Triton backend, and on
    the meta device (their fake implementations give shapes and memory accounting there).
    Otherwise ops run PyTorch's own unfused math with its native autograd."""
    return tensor.device.type == "meta" or use_triton(tensor)
