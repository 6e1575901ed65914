"""Determinism: under ``torch.use_deterministic_algorithms(True)`` every registry entry gives
bit-identical outputs, gradients and running statistics run to run, and whatever the order in
which the GPU would run its programs.

The interpreter runs a grid's programs one after another in index order; here it also runs them
in reverse and in a shuffled order. Any result that depended on which program finishes last (the
statistics' "last program combines" step, a reduction by atomics) would change with the order.
"""
import itertools
import random

import pytest
import torch
from triton.runtime.interpreter import interpreter_builder

import fasthg
from fasthg.kernels import registry
from opinfo import OPS, bind, draw_sample, leaves, run

AFFORDABLE = [info for info in OPS if info.cost <= 10]
MODES = [(info, training) for info in AFFORDABLE for training in ((True, False) if "training" in info.example else (None,))]
MODE_IDS = [f"{info}-{'train' if t else 'eval' if t is False else 'fn'}" for info, t in MODES]


class Schedule:
    """Replaces the interpreter's program order in every grid: "index", "reverse" or "shuffle"."""

    def __init__(self, order, seed=0):
        self.order, self.random, self.executed = order, random.Random(seed), []

    def set_grid_dim(self, nx, ny, nz):
        self.original_dim(nx, ny, nz)
        self.programs = list(itertools.product(range(nx), range(ny), range(nz)))
        self.largest_grid = max(getattr(self, "largest_grid", 0), len(self.programs))
        if self.order == "reverse":
            self.programs.reverse()
        elif self.order == "shuffle":
            self.random.shuffle(self.programs)
        self.next = 0

    def set_grid_idx(self, x, y, z):
        program = self.programs[self.next]
        self.next += 1
        self.executed.append(program)
        self.original_idx(*program)

    def __enter__(self):
        self.original_dim, self.original_idx = interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx
        interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx = self.set_grid_dim, self.set_grid_idx
        return self

    def __exit__(self, *exc):
        del interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx  # back to the class's methods


@pytest.fixture
def deterministic():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


def _sizes(info, training):
    """The example, grown to several row tiles of the GPU's configurations (64 rows in fp32)."""
    sizes = {**info.example, **({"n": 1, "h": 16, "w": 12} if "h" in info.example else {})}
    return sizes if training is None else {**sizes, "training": training}


def _run(info, sizes, dtype, schedule=None):
    sample = draw_sample(info, sizes)
    if schedule is None:
        return run(bind(info, sizes, "fused", dtype), leaves(sample, dtype), "channels_last")
    with schedule:
        return run(bind(info, sizes, "fused", dtype), leaves(sample, dtype), "channels_last")


def assert_bit_identical(first, second, what):
    for i, (a, b) in enumerate(zip(first.outputs, second.outputs)):
        assert torch.equal(a, b), f"{what}: output {i} differs by up to {float((a.double() - b.double()).abs().max()):.3e}"
    assert first.grads.keys() == second.grads.keys()
    for name in first.grads:
        a, b = first.grads[name], second.grads[name]
        assert torch.equal(a, b), f"{what}: grad {name} differs by up to {float((a.double() - b.double()).abs().max()):.3e}"
    for name in first.buffers:
        assert torch.equal(first.buffers[name], second.buffers[name]), f"{what}: {name} differs"


@pytest.mark.parametrize("info, training", MODES, ids=MODE_IDS)
def test_bit_identical_under_any_program_order(triton_backend, deterministic, info, training):
    sizes = _sizes(info, training)
    dtype = torch.float32 if torch.float32 in info.interpreter_dtypes else info.interpreter_dtypes[0]
    with registry.emulating(80):  # the GPU's tiles: many programs per grid
        first = _run(info, sizes, dtype)
        assert_bit_identical(first, _run(info, sizes, dtype), "run to run")
        for order in ("reverse", "shuffle"):
            schedule = Schedule(order, seed=1)
            assert_bit_identical(first, _run(info, sizes, dtype, schedule), f"programs in {order} order")
            assert schedule.largest_grid >= 3, f"only {schedule.largest_grid} programs: nothing to reorder"


@pytest.mark.parametrize("info, training", [m for m in MODES if m[0].torch_dtypes], ids=[i for m, i in zip(MODES, MODE_IDS) if m[0].torch_dtypes])
def test_torch_path_bit_identical_run_to_run(torch_backend, deterministic, info, training):
    sizes = _sizes(info, training)
    assert_bit_identical(_run(info, sizes, torch.float32), _run(info, sizes, torch.float32), "torch path run to run")


def test_the_schedule_really_reorders_programs(triton_backend):
    # A grid of several programs (GPU tiles on a 2x3x40x40 input) runs in reverse order under the patch.
    x = torch.randn(2, 3, 40, 40).to(memory_format=torch.channels_last)
    with registry.emulating(80), Schedule("reverse") as schedule:
        out = fasthg.ops.max_pool2x2(x)
    assert len(schedule.executed) > 1 and schedule.executed == sorted(schedule.executed, reverse=True)
    torch.testing.assert_close(out, torch.nn.functional.max_pool2d(x, 2), rtol=0, atol=0)
