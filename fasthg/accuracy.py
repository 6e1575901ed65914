"""How fasthg judges a result it cannot expect to match exactly: against the fp64 answer, relative
to eager PyTorch's own error in the same dtype (as FlashAttention's tests do).

The tolerance then follows the problem's conditioning instead of a guessed constant: a result may
be at most ``factor`` times as far from the fp64 answer as eager PyTorch's is, plus a few units in
the last place (eager can be exact by luck). Distances are measured on a scale: by default the
largest magnitude of the exact tensor; for gradients, that of all the gradients, since some are
zero in exact arithmetic and their own relative error is pure rounding noise
(docs/without_a_gpu.md).

The test suite (in the interpreter) and ``python -m fasthg.gpucheck`` (on a GPU) both judge
with :func:`against_eager`, so a result passes on the GPU by the rule it passes by in the tests.
"""
from dataclasses import dataclass

import torch

from .ops.launch import accumulation_dtype
from .reference import model as reference_model

EAGER_FACTOR = 3.0
# The error allowed whatever eager's, in units in the last place at the scale judged: eager can be
# exact by luck. In bf16 (8 bits) that is 3.1%: with EAGER_FACTOR times eager's usual error (under
# 1 ulp) a bound of 4.5-6% at the gradients' scale, which a 5% error can pass (tests/test_stack_head.py).
FLOOR_ULPS = 4


def max_difference(actual, exact):
    """max |actual - exact| in fp64, on ``exact``'s device (no copy of a large tensor to the host)."""
    return float((actual.detach().to(exact.device, torch.float64) - exact.detach().double()).abs().max())


def magnitude(tensors):
    """The largest finite magnitude in ``tensors`` (0.0 when they are empty)."""
    return max((float(t.detach().double().abs().nan_to_num().max()) for t in tensors if t.numel()), default=0.0)


def relative_error(actual, exact):
    """max |actual - exact| / max |exact|, in fp64."""
    return max_difference(actual, exact) / max(float(exact.detach().double().abs().max()), 1e-300)


@dataclass(frozen=True)
class Judgement:
    """One tensor's verdict: its error and eager's (both on the same scale) and the bound."""
    name: str
    dtype: torch.dtype
    error: float
    eager_error: float
    factor: float
    floor: float

    @property
    def bound(self):
        return self.factor * self.eager_error + self.floor

    @property
    def passed(self):
        return self.error <= self.bound

    def __str__(self):
        relation = "within" if self.passed else "exceeds"
        return (f"{self.name}: error vs fp64 {self.error:.3e} {relation} {self.factor:g}x eager's "
                f"{self.eager_error:.3e} (+ eps {self.floor:.1e}) in {self.dtype}")


def against_eager(name, actual, eagers, exact, factor=EAGER_FACTOR, ulps=1, scale=None, floor=None):
    """Judges ``actual`` against fp64 ``exact`` relative to the worst of ``eagers`` (eager PyTorch in
    ``actual``'s dtype: equally valid runs, e.g. in two memory layouts).

    ``scale``: what distances are relative to (default max |exact|, i.e. relative errors).
    ``floor``: the error allowed whatever eager's (default ``ulps`` units in the last place).
    """
    scale = max(float(exact.detach().double().abs().max()), 1e-300) if scale is None else scale
    eager_error = max((max_difference(eager, exact) for eager in eagers), default=0.0) / scale
    floor = ulps * torch.finfo(actual.dtype).eps if floor is None else floor
    return Judgement(name, actual.dtype, max_difference(actual, exact) / scale, eager_error, factor, floor)


def _stored(t, dtype):
    """``t`` with the value it has when stored in ``dtype``, and ``t``'s gradient."""
    return t + (t.to(dtype).to(t.dtype) - t).detach()


def round_stored_tensors(module, dtype):
    """Gives a reference ``module`` (fp64) the values fasthg's kernels store in ``dtype``, gradients
    unchanged, so that it decides every ReLU on the values the kernels decide it on:

    * every BatchNorm's input: a conv output or a module's output, stored in ``dtype``, whose
      statistics the kernels reduce and which they normalise as stored;
    * every ReLU's output: a conv's prologue rounds BN-ReLU(y) to the conv's dtype for its product;
    * every Residual's and Hourglass's output: one rounding of the sum their last kernel forms.

    Without it, a ReLU input within rounding distance of zero (a few in every bf16 draw) is
    decided one way by the kernels and the other way by the reference, and that element's
    gradient differs by its whole value. With it, the two differ in fp32 rounding only.
    """
    def round_input(bn, args):
        return (_stored(args[0], dtype),)

    def round_output(relu, args, out):
        return _stored(out, dtype)

    for part in module.modules():
        if isinstance(part, torch.nn.BatchNorm2d):
            part.register_forward_pre_hook(round_input)
        elif isinstance(part, (torch.nn.ReLU, reference_model.Residual, reference_model.Hourglass)):
            part.register_forward_hook(round_output)
    return module


def in_accumulation_dtype(reference):
    """``reference`` run on its first argument in the dtype fasthg's op computes and returns in
    (fp32; fp64 for fp64): the reference of ops whose results are sums or coordinates."""
    def wrapped(x, *args, **kwargs):
        dtype = accumulation_dtype(x.dtype)
        outputs = reference(x.to(dtype), *args, **kwargs)
        return tuple(out.to(dtype) for out in (outputs if isinstance(outputs, (tuple, list)) else (outputs,)))
    return wrapped
