"""The wave model (bench/wave.py, bench/work.py): a hand-countable case, every kernel's modelled
per-program work against the loop iterations its programs really run in the interpreter, and
longest ÷ median program at mid sizes.

The kernels run at the GPU's tiles (``registry.emulating(90)``) on shapes whose rows are no
multiple of the tiles, with enough row tiles that the statistics' reduction trees have two levels
(9 row tiles in groups of 8); tests/program_work.py counts each program's innermost-loop iterations.
"""
import sys
from unittest import mock

import pytest
import torch
import triton
import triton.language as tl

import fasthg
from bench.counting import Kernel
from bench.resources import configuration
from bench.roofline import LAUNCH_OVERHEAD_SECONDS, Gpu
from bench.wave import WaveModel, stretch
from bench.work import WORK, WorkClass, classes_of, imbalance, longest, median, program_work
from fasthg.kernels import registry
from fasthg.nn.chaining import next_batch_norm
from opinfo import bind, draw_sample, entry, leaves, run
from program_work import LoopCounter, imbalances, measured_launches


def test_wave_model_counted_by_hand():
    # 3 programs of 10 steps and 1 of 40 on 2 slots: the long program holds one slot for 40 steps
    # while the other runs the three short ones (30): 40 steps, against W / slots = 70 / 2 = 35.
    classes = (WorkClass(3, 10), WorkClass(1, 40))
    assert (longest(classes), median(classes), imbalance(classes)) == (40, 10, 4.0)
    assert stretch(classes, slots=2) == pytest.approx(40 / 35)
    assert stretch(classes, slots=1) == 1.0  # one slot runs all 70 steps in a row: the roofline's time
    # A GPU of 1 SM with 2 resident programs of configuration "k", moving 35 bytes per second.
    gpu = Gpu("toy", bandwidth=1.0, peak_flops={torch.float32: 1.0}, arch=90, sms=1)
    wave = WaveModel(gpu, [{"label": "k", "arch": 90, "num_warps": 32, "occupancy": 1.0, "error": ""}])
    launch = Kernel("op", "k", bytes=35, flops=0, triton=True, work=classes, configuration="k")
    assert wave.slots(launch) == 2
    assert wave.kernel_seconds(launch, torch.float32) == pytest.approx(40 + LAUNCH_OVERHEAD_SECONDS)
    aten = Kernel("op", "aten::add", bytes=35, flops=0)  # taken as filling the GPU
    assert wave.step_seconds([launch, aten], torch.float32) == pytest.approx(75 + 2 * LAUNCH_OVERHEAD_SECONDS)
    # parallel efficiency of the launch: roofline ÷ wave = 35 / 40
    assert gpu.kernel_seconds(launch, torch.float32) / wave.kernel_seconds(launch, torch.float32) == pytest.approx(
        (35 + LAUNCH_OVERHEAD_SECONDS) / (40 + LAUNCH_OVERHEAD_SECONDS))


@triton.jit
def _loops_kernel(out_ptr):
    pid = tl.program_id(0)
    total = 0
    for i in range(3):  # not innermost: only its inner loop's 3 x 4 iterations count
        for j in range(4):
            total += 1
    for k in range(0, pid * 5, 2):  # ceil(5 pid / 2): none in program 0, which then counts 1
        total += 1
    tl.store(out_ptr + pid, total)


def test_loop_counter_counts_innermost_iterations_per_program():
    out = torch.zeros(3, dtype=torch.int32)
    with LoopCounter(modules=[sys.modules[__name__]]) as counter:
        _loops_kernel[(3,)](out)
        _loops_kernel[(1,)](out)
    assert counter.works() == [[12, 12 + 3, 12 + 5], [12]]
    assert out.tolist() == [12, 15, 17]


def _max_pool_passing_its_input():
    """The 2x2 max-pool whose input feeds another op too: its backward adds that op's gradient (HAS_THROUGH)."""
    x = torch.randn(2, 67, 9, 11).to(memory_format=torch.channels_last).requires_grad_()
    out, _, through = fasthg.ops.max_pool2x2(x, pass_input=True)
    torch.autograd.backward([out, through], [torch.randn_like(out), torch.randn_like(x)])


def _residual_passing_its_input():
    """A Residual whose input feeds another op too: its dx launch adds that op's gradient (HAS_THROUGH)."""
    module = fasthg.Residual(6, 6)
    x = torch.randn(2, 6, 5, 7).to(memory_format=torch.channels_last).requires_grad_()
    out, _, through = module(x, pass_input=True)
    torch.autograd.backward([out, through], [torch.randn_like(out), torch.randn_like(x)])


def _pixel_ops_with_statistics_and_without_grad():
    """The upsample-add and max-pool forwards a model no longer launches itself: the upsample-add
    reducing its output's statistics (an hourglass's up1 adds its inner branch now), and the max-pool
    without autograd (no window index), with and without statistics."""
    following = torch.nn.BatchNorm2d(67)
    low, skip = torch.randn(2, 67, 5, 7), torch.randn(2, 67, 10, 14)
    fasthg.ops.upsample_add(low, skip, next_batch_norm(following))
    x = torch.randn(2, 67, 9, 11).to(memory_format=torch.channels_last)
    with torch.no_grad():
        fasthg.ops.max_pool2x2(x)
        fasthg.ops.max_pool2x2(x, next_batch_norm(following))


def _pixel_ops_at_their_regular_tiles():
    """The pixel cases (too small to fill a GPU: they run the fine tiles) again with the fine tiles
    off (FINE_TILES_BELOW = 0), so every pixel kernel variant runs its regular tile too."""
    with mock.patch.object(fasthg.ops.launch, "FINE_TILES_BELOW", 0):
        _step(*CASES["upsample_add"])()
        _step(*CASES["max_pool2x2"])()
        _max_pool_passing_its_input()
        _pixel_ops_with_statistics_and_without_grad()
        x = torch.randn(2, 67, 9, 11).to(memory_format=torch.channels_last).requires_grad_()
        fasthg.ops.max_pool2x2(x, next_batch_norm(torch.nn.BatchNorm2d(67)))[0].sum().backward()  # as in a model


# case: (opinfo entry, sizes, run the backward too), or the step itself
CASES = {
    # 70 rows: 2 row tiles of 64, the second partial; 17 input channels: 2 K blocks of 16
    "residual-train-skip": ("Residual", {"inp": 17, "out": 6, "n": 2, "h": 5, "w": 7, "training": True}, True),
    "residual-train": ("Residual", {"inp": 6, "out": 6, "n": 2, "h": 5, "w": 7, "training": True}, True),
    "residual-eval-skip": ("Residual", {"inp": 17, "out": 6, "n": 2, "h": 5, "w": 7, "training": False}, True),
    "residual-eval": ("Residual", {"inp": 6, "out": 6, "n": 2, "h": 5, "w": 7, "training": False}, True),
    # 529 rows: 9 row tiles, reduced in a tree of two levels (groups of 8: 9 -> 2 -> 1)
    "residual-train-forward-9-tiles": ("Residual", {"inp": 17, "out": 6, "n": 1, "h": 23, "w": 23, "training": True}, False),
    "head-train-9-tiles": ("stack_head", {"f": 5, "oup": 3, "merged": True, "n": 1, "h": 23, "w": 23, "training": True}, True),
    "head-train-last": ("stack_head", {"f": 5, "oup": 3, "merged": False, "n": 2, "h": 5, "w": 7, "training": True}, True),
    "head-eval": ("stack_head", {"f": 5, "oup": 3, "merged": True, "n": 2, "h": 5, "w": 7, "training": False}, True),
    # every producer of statistics for the next BN (fasthg.ops.statistics): the max-pools, the inner
    # upsample-add, Residuals with a skip conv and with an identity skip, the head's merge
    "hourglass-train-2-levels": ("Hourglass", {"depth": 2, "f": 3, "increase": 1, "n": 2, "h": 8, "w": 12,
                                               "training": True}, True),
    "posenet-2-stacks-train-forward": ("PoseNet", {"nstack": 2, "training": True}, False),
    "upsample_add": ("upsample_add", {"n": 2, "c": 67, "h": 5, "w": 7}, True),
    "max_pool2x2": ("max_pool2x2", {"n": 2, "c": 67, "h": 9, "w": 11}, True),
    "max_pool2x2-passing-its-input": _max_pool_passing_its_input,
    "residual-passing-its-input": _residual_passing_its_input,
    "pixel-ops-with-statistics-and-without-grad": _pixel_ops_with_statistics_and_without_grad,
    "pixel-ops-at-their-regular-tiles": _pixel_ops_at_their_regular_tiles,
    # 1640 pixels: 2 blocks of 1024, the second partial
    "render_heatmaps": ("render_heatmaps", {"n": 2, "joints": 3, "h": 40, "w": 41, "sigma": 1.0, "style": "princeton"}, False),
    "heatmap_loss": ("heatmap_loss", {"n": 1, "stacks": 2, "joints": 3, "h": 40, "w": 41, "sigma": 1.0, "style": "mmpose",
                                      "weighted": False}, False),
    "decode_heatmaps": ("decode_heatmaps", {"n": 2, "joints": 3, "h": 40, "w": 41, "style": "princeton"}, False),
}


def _step(name, sizes, backward, dtype=torch.float32):
    info = entry(name)
    return lambda: run(bind(info, sizes, "fused", dtype), leaves(draw_sample(info, sizes), dtype), "channels_last",
                       backward=backward)


class _MeasuredCases(dict):
    """{case: [(TritonLaunch, its programs' works)]}, each case run on first use."""

    def __missing__(self, case):
        with fasthg.backend("triton"), registry.emulating(90):
            step = CASES[case]
            self[case] = measured_launches(step if callable(step) else _step(*step))
        return self[case]


@pytest.fixture(scope="session")
def measured():
    """Every case run once per worker for all the tests here (xdist may give a worker some of them)."""
    return _MeasuredCases()


@pytest.mark.parametrize("case", CASES)
def test_modelled_work_is_what_every_program_runs(measured, case):
    assert measured[case], "no Triton launch"
    for i, (launch, works) in enumerate(measured[case]):
        assert classes_of(works) == program_work(launch), (
            f"launch {i} {launch.kernel} grid {launch.grid}: programs ran {classes_of(works)}, "
            f"the model says {program_work(launch)}")


def test_cases_cover_every_kernel_and_gpu_configuration(measured):
    launched = [launch for case in CASES for launch, _ in measured[case]]
    assert {launch.kernel for launch in launched} == set(WORK) == {config.kernel.fn.__name__ for config in registry.REGISTRY}
    # Every fp32 GPU configuration (the pixel kernels' regular and fine tiles) but the heatmap
    # kernels' other STYLEs, the convs' IEEE products (what cudnn.allow_tf32 = False runs) and the
    # 3x3 forward's 128-row tile (only autotuning on a GPU runs it; BLOCK_M sets the grid, not a
    # program's loops), which change no loop.
    gpu_fp32 = {config.label for config in registry.REGISTRY if config.dtype == torch.float32 and 90 in config.archs
                and config.name not in ("render_heatmaps", "heatmap_loss", "decode_heatmaps")
                and config.constexprs.get("INPUT_PRECISION") != "ieee"
                and not (config.name == "conv_forward" and registry.is_alternative(config))}
    assert gpu_fp32 - {configuration(launch) for launch in launched} == set()


# --- longest ÷ median program at mid sizes (issue 14's bound: 4) ----------------------------------------

MID_SIZES = {  # 2 x 24 x 24 = 1152 rows: 18 row tiles of 64; the channels of an hourglass's stem
    "Residual": {"inp": 64, "out": 128, "n": 2, "h": 24, "w": 24, "training": True},
    "stack_head": {"f": 64, "oup": 16, "merged": True, "n": 2, "h": 24, "w": 24, "training": True},
}
BOUND = 4


@pytest.mark.parametrize("name", MID_SIZES)
def test_no_program_runs_more_than_4x_its_launch_median(triton_backend, name):
    with registry.emulating(90):
        found = imbalances(_step(name, MID_SIZES[name], True))
    over = [f"{launch.kernel} grid {launch.grid}: {ratio:.1f}x" for launch, ratio in found if ratio > BOUND]
    assert not over, f"longest ÷ median program above {BOUND}: " + "; ".join(over)
