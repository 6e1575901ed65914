"""Gradients checked numerically, and every ``fasthg::`` custom op checked by torch.library.opcheck.

gradcheck runs in fp64 on each registry entry's example (tests/opinfo.py), on the backends its
``gradcheck`` names ("full": every Jacobian column; "fast": random projections, a few forwards
instead of one per input element, for the interpreter's slow modules), with respect to the inputs
and, for modules, their parameters.
"""
import importlib
import pkgutil

import pytest
import torch
from torch._library.custom_ops import CustomOpDef
from torch.func import functional_call

import fasthg
import fasthg.ops
from opinfo import OPS, LAYOUTS, bind, draw_sample, leaves

BACKENDS = {"interpreter": "triton", "torch": "torch"}


def registered_custom_ops():
    """Qualified names of every custom op defined in a fasthg.ops module."""
    names = set()
    for module_info in pkgutil.walk_packages(fasthg.ops.__path__, "fasthg.ops."):
        module = importlib.import_module(module_info.name)
        names |= {value._qualname for value in vars(module).values() if isinstance(value, CustomOpDef)}
    return names


SAMPLES = {name: sample for info in OPS for name, sample in info.custom_ops.items()}


def _as_function(bound, inputs, with_parameters):
    """(fn, tensors): fn(*inputs, flat) with the module's parameters read from one flat vector, so
    fast mode perturbs them all in one direction (a forward or two, not two per parameter)."""
    laid_out = [lambda t: LAYOUTS["channels_last"](t) if t.dim() == 4 else t] * len(inputs)
    tensors = list(inputs.values())
    if bound.module is None or not with_parameters:
        return lambda *t: bound.fn(*[f(x) for f, x in zip(laid_out, t)]), tensors
    names, shapes = list(bound.params), [p.shape for p in bound.params.values()]
    flat = torch.cat([p.detach().flatten() for p in bound.params.values()]).requires_grad_()

    def fn(*t):
        parameters = torch.split(t[-1], [shape.numel() for shape in shapes])
        state = {name: p.view(shape) for name, p, shape in zip(names, parameters, shapes)}
        return functional_call(bound.module, state, tuple(f(x) for f, x in zip(laid_out, t[:-1])), strict=False)

    return fn, tensors + [flat]


CASES = [(info, backend, mode) for info in OPS if info.differentiable for backend, mode in info.gradcheck.items()]
# On the torch path a module in training runs the reference's own code; in eval, its folded BN.
TRAINING = {"interpreter": (True, False), "torch": (False,)}


@pytest.mark.parametrize("info, backend, mode", CASES, ids=[f"{i}-{b}-{m}" for i, b, m in CASES])
def test_gradcheck(info, backend, mode):
    sample = draw_sample(info, info.example)
    for training in TRAINING[backend] if "training" in info.example else (None,):
        sizes = info.example if training is None else {**info.example, "training": training}
        with fasthg.backend(BACKENDS[backend]):
            bound = bind(info, sizes, "fused", torch.float64, sample.options)
            # Inputs in channels_last (the kernels' layout, taken without a copy), as NaN-guarded views.
            fn, tensors = _as_function(bound, leaves(sample, torch.float64), info.gradcheck_parameters)
            assert torch.autograd.gradcheck(fn, tuple(tensors), fast_mode=mode == "fast", nondet_tol=0.0), \
                f"{info.name} (training={training})"


def test_every_custom_op_has_an_opcheck_sample():
    registered = registered_custom_ops()
    missing = registered - set(SAMPLES)
    assert not missing, f"custom ops without an opcheck sample in tests/opinfo.py: {sorted(missing)}"
    unknown = set(SAMPLES) - registered
    assert not unknown, f"opcheck samples for ops that are not registered: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_opcheck(triton_backend, name):
    namespace, op = name.split("::")
    torch.library.opcheck(getattr(getattr(torch.ops, namespace), op).default, SAMPLES[name]())
