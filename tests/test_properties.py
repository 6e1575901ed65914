"""Hypothesis-driven parity: every registry entry (tests/opinfo.py) against its reference.

Each property draws sizes (batch 1, odd channel counts, sizes that are not block multiples,
non-square maps), a dtype, a memory layout of the inputs (NCHW, channels_last, a strided view
with NaN in its gaps), a kind of values and, in the interpreter, the kernel tiles (the
interpreter's or the GPU's), and checks forward and backward. The "ci" profile (tests/conftest.py)
draws max_examples // cost examples per entry, reproducibly; `--hypothesis-profile long` explores.
"""
import pytest
from hypothesis import given, settings

from fasthg.kernels import registry
from opinfo import OPS, case_strategy, draw_sample
from parity import check_parity


def examples(info):
    return max(1, settings.default.max_examples // info.cost)


def check(info, case):
    sample = draw_sample(info, case["sizes"], case["values"], case["seed"])
    with registry.emulating(case["tiles"]):
        check_parity(info, case["sizes"], sample, case["dtype"], case["layout"])


@pytest.mark.parametrize("info", OPS, ids=str)
def test_interpreter_matches_reference(triton_backend, info):
    @settings(max_examples=examples(info))
    @given(case=case_strategy(info, info.interpreter_dtypes, [registry.INTERPRETER, 80]))
    def prop(case):
        check(info, case)

    prop()


@pytest.mark.parametrize("info", [info for info in OPS if info.torch_dtypes], ids=str)
def test_torch_path_matches_reference(torch_backend, info):
    @settings(max_examples=examples(info))
    @given(case=case_strategy(info, info.torch_dtypes, [registry.INTERPRETER]))
    def prop(case):
        check(info, case)

    prop()
