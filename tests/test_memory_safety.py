"""Memory safety of every registry entry in the interpreter: no kernel reads or writes outside its tensors.

Two nets. Inputs are views inside NaN-filled guard memory (NaN before, after and, for strided
views, between their elements): a stray read puts NaN into a result, a stray write changes a
guard. And a bounds-checking interpreter (tests/memory_guard.py) checks the address of every
load, store and atomic of every kernel against the tensors of its launch, outputs and
workspaces included (the ops allocate their outputs: no API takes an ``out=``).
"""
import pytest
import torch
import triton
import triton.language as tl
from hypothesis import given, settings
from triton.runtime.errors import InterpreterError

from fasthg.kernels import registry
from memory_guard import BoundsChecker
from opinfo import LAYOUTS, OPS, as_tuple, bind, case_strategy, draw_sample, grad_outputs, leaves

AFFORDABLE = [info for info in OPS if info.cost <= 2]


def _guard_intact(view):
    """The buffer around ``view`` (made by opinfo.guarded) is still all NaN outside the view's elements."""
    buffer = view._base
    inside = torch.zeros(buffer.numel(), dtype=torch.bool)
    inside.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(True)
    return bool(buffer[~inside].isnan().all())


def check_memory(info, sizes, sample, dtype, layout):
    inputs = leaves(sample, dtype)
    views = {name: LAYOUTS[layout](t) if t.is_floating_point() else t for name, t in inputs.items()}
    originals = {name: v.detach().clone() for name, v in views.items()}
    bound = bind(info, sizes, "fused", dtype, sample.options)
    with BoundsChecker() as checker:
        outputs = as_tuple(bound.fn(*views.values()))
        tracked = [t for t in inputs.values() if t.requires_grad] + list(bound.params.values())
        live = [(o, g) for o, g in zip(outputs, grad_outputs(outputs)) if o.requires_grad]
        grads = torch.autograd.grad([o for o, _ in live], tracked, [g for _, g in live], allow_unused=True)
    assert checker.accesses > 0, "no memory access was checked: did the kernels run?"
    assert not checker.violations, "\n".join(checker.violations)
    for name, view in views.items():
        if view.is_floating_point():
            assert _guard_intact(view), f"{name}: the guard memory around it was written"
            assert torch.equal(view.detach(), originals[name]), f"{name}: the op changed its input"
    for i, t in enumerate([*outputs, *(g for g in grads if g is not None)]):
        assert not t.isnan().any(), f"result {i} has NaN: a read strayed into the guard memory"


@pytest.mark.parametrize("info", AFFORDABLE, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_examples_stay_inside_their_tensors(triton_backend, info, layout):
    with registry.emulating(80):  # the GPU's tiles: partial edge tiles in every dimension
        check_memory(info, info.example, draw_sample(info, info.example), torch.float32, layout)


@pytest.mark.parametrize("info", AFFORDABLE, ids=str)
def test_drawn_cases_stay_inside_their_tensors(triton_backend, info):
    @settings(max_examples=max(1, settings.default.max_examples // (2 * info.cost)))
    @given(case=case_strategy(info, info.interpreter_dtypes, [registry.INTERPRETER, 80]))
    def prop(case):
        with registry.emulating(case["tiles"]):
            check_memory(info, case["sizes"], draw_sample(info, case["sizes"], case["values"], case["seed"]),
                         case["dtype"], case["layout"])

    prop()


def test_the_checker_catches_an_access_outside(triton_backend):
    # A launch given a view of the first image of two while its sizes claim both: the kernel reads
    # the second image (memory of the same buffer, so nothing is harmed) and the checker says so.
    from fasthg.ops.launch import launch_pixel_tiles
    x = torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last)
    out = torch.empty(2, 3, 2, 2).to(memory_format=torch.channels_last)
    with BoundsChecker() as checker:
        launch_pixel_tiles("max_pool2x2_forward", 8, x_ptr=x[:1], out_ptr=out, N=2, C=3, H=4, W=4)
    # Four loads (one per window corner), each of the second image's 12 (pixel, channel) pairs.
    assert checker.violations == ["max_pool2x2_forward_kernel: load of 12 element(s) outside its tensors"] * 4


@triton.jit
def _offset_kernel(out_ptr, stride):
    """Stores nothing beyond out_ptr[0]; the offset 3 * stride is an int32 product."""
    offset = tl.program_id(0) * 0 + 3 * stride
    tl.store(out_ptr + offset - offset, offset.to(tl.float32))


def test_the_checker_catches_32_bit_integer_overflow():
    # 3 * 2^30 overflows int32: under the checker the interpreter says so; elsewhere (as on a GPU
    # without debug) the product wraps around (tests/interpreter_patching.py).
    out = torch.zeros(1)
    with pytest.raises(InterpreterError, match="int32 overflow detected for operation mul"):
        with BoundsChecker():
            _offset_kernel[(1,)](out, 1 << 30)
    _offset_kernel[(1,)](out, 1 << 30)
    assert out.item() == float(3 * (1 << 30) - (1 << 32))
