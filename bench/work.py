"""The serial work of every program of a Triton launch, read off the kernels' loop trip counts.

A GPU runs a launch's programs concurrently, so a launch lasts at least as long as its longest
program (DESIGN.md §6). The wave model (:mod:`bench.wave`) needs, per launch, how much work each
program does; :func:`program_work` gives it from a :class:`bench.launches.TritonLaunch` (its grid
and every argument by name, constexprs included), without running anything.

**The unit of work is one tile step**: one iteration of a program's innermost loop (a K-step of a
GEMM with its ``tl.dot``, a step of a finishing loop that combines partials, a pixel block of a
heatmap); a program that runs no loop does one step, its single tile. Steps of different kinds
(a 64x64x16 product, a combine of 8 partial rows) count alike: the model compares programs within
a launch, and most launches have one kind of step. A finishing program's own tile, when its kernel
has no main loop (``channel_stats``), is not added to its finishing steps.

Each kernel has one function ``(grid, arguments) -> [WorkClass]`` in :data:`WORK`, with the
kernel's and its launcher's own arithmetic; grids reach tens of thousands of programs, so the
result is compact: classes of (number of programs, steps each). A reduction finished by "the last
program to arrive" at a column block's counter is charged to one program per column block (which
one is decided at run time; in the interpreter it is the highest-index program of the block).
``tests/test_wave_model.py`` counts every program's loop iterations in the interpreter and checks
them against these functions, so a kernel whose loops change fails there until its function does.
"""
import inspect
from collections import Counter
from typing import NamedTuple

from fasthg.kernels import helpers


class WorkClass(NamedTuple):
    """``programs`` programs of a launch, each running ``work`` tile steps."""
    programs: int
    work: int


def _cdiv(a, b):
    return -(-a // b)


def _finish_tiles(helper):
    """The partial rows a finishing helper combines per step: its FINISH_TILES default, read from
    its signature so the model follows the kernel."""
    return inspect.signature(helper.fn).parameters["FINISH_TILES"].default


def _classes(*pairs):
    """The (programs, work) pairs with any programs, as WorkClasses."""
    return [WorkClass(programs, work) for programs, work in pairs if programs > 0]


def _with_finishers(programs, work, finishers, finish_steps):
    """``programs`` programs of ``work`` steps, of which ``finishers`` (one per column block) also
    run ``finish_steps`` steps combining the partials of the others."""
    return _classes((programs - finishers, work), (finishers, work + finish_steps))


def conv_forward_work(grid, a):
    """One program per [BLOCK_M, BLOCK_N] output tile: KSIZE^2 ceil(C_in / BLOCK_K) K-steps, plus
    ceil(C_skip / BLOCK_K) with HAS_SKIP. With STATS the last program of each of the grid[1]
    column blocks combines the grid[0] row tiles' moments in finish_moments' two passes of
    ceil(grid[0] / FINISH_TILES) steps each."""
    row_tiles, column_tiles = grid
    steps = a["KSIZE"] ** 2 * _cdiv(a["C_in"], a["BLOCK_K"]) + (_cdiv(a["C_skip"], a["BLOCK_K"]) if a["HAS_SKIP"] else 0)
    finish = 2 * _cdiv(row_tiles, _finish_tiles(helpers.finish_moments)) if a["STATS"] else 0
    return _with_finishers(row_tiles * column_tiles, steps, column_tiles if a["STATS"] else 0, finish)


def conv_backward_work(grid, a):
    """A 1-D grid: first the wgrad programs, ceil(C_out / BLOCK_N) x (KSIZE^2 ceil(C_wgrad / BLOCK_K)
    + ceil(C_skip / BLOCK_K) with HAS_SKIP), each looping over all M = N H W rows in
    ceil(M / BLOCK_M) steps; then the dgrad programs, KSIZE^2 ceil(C_out / BLOCK_K) steps each, of
    which with EPILOGUE_BN the last of each of the ceil(C_dgrad / BLOCK_N) column blocks adds
    finish_sums' ceil(row tiles / FINISH_TILES) steps."""
    (programs,) = grid
    row_steps = _cdiv(a["N"] * a["H"] * a["W"], a["BLOCK_M"])
    wgrad = 0
    if a["WGRAD"]:
        k_blocks = a["KSIZE"] ** 2 * _cdiv(a["C_wgrad"], a["BLOCK_K"]) + (_cdiv(a["C_skip"], a["BLOCK_K"]) if a["HAS_SKIP"] else 0)
        wgrad = _cdiv(a["C_out"], a["BLOCK_N"]) * k_blocks
    dgrad = programs - wgrad if a["DGRAD"] else 0
    steps = a["KSIZE"] ** 2 * _cdiv(a["C_out"], a["BLOCK_K"])
    finishers = _cdiv(a["C_dgrad"], a["BLOCK_N"]) if a["EPILOGUE_BN"] else 0
    finish = _cdiv(row_steps, _finish_tiles(helpers.finish_sums))
    return _classes((wgrad, row_steps)) + _with_finishers(dgrad, steps, finishers, finish)


def channel_stats_work(grid, a):
    """One [BLOCK_M, BLOCK_C] tile per program (one step); the last of each of the grid[1] channel
    blocks runs finish_moments' two passes of ceil(grid[0] / FINISH_TILES) steps instead."""
    row_tiles, channel_tiles = grid
    finish = 2 * _cdiv(row_tiles, _finish_tiles(helpers.finish_moments))
    return _classes((row_tiles * channel_tiles - channel_tiles, 1), (channel_tiles, finish))


def single_tile_work(grid, a):
    """A kernel without loops: every program does its one tile (BN backward apply, upsample-add,
    max-pool, rendering)."""
    programs = 1
    for size in grid:
        programs *= size
    return _classes((programs, 1))


def heatmap_loss_work(grid, a):
    """One program per (joint map, stack), looping over the map's pixels in blocks of BLOCK_HW."""
    maps, stacks = grid
    return _classes((maps * stacks, _cdiv(a["height"] * a["width"], a["BLOCK_HW"])))


def decode_heatmaps_work(grid, a):
    """One program per joint map, looping over its pixels in blocks of BLOCK_HW."""
    (maps,) = grid
    return _classes((maps, _cdiv(a["height"] * a["width"], a["BLOCK_HW"])))


# kernel function name: (grid, arguments by name) -> [WorkClass]
WORK = {
    "conv_forward_kernel": conv_forward_work,
    "conv_backward_kernel": conv_backward_work,
    "channel_stats_kernel": channel_stats_work,
    "bn_backward_apply_kernel": single_tile_work,
    "upsample_add_forward_kernel": single_tile_work,
    "upsample_add_backward_kernel": single_tile_work,
    "max_pool2x2_forward_kernel": single_tile_work,
    "max_pool2x2_backward_kernel": single_tile_work,
    "render_heatmaps_kernel": single_tile_work,
    "heatmap_loss_kernel": heatmap_loss_work,
    "decode_heatmaps_kernel": decode_heatmaps_work,
}


def program_work(launch):
    """The :class:`WorkClass` es of a :class:`bench.launches.TritonLaunch`, by increasing work."""
    return merged([WORK[launch.kernel](tuple(launch.grid), launch.arguments)])


def classes_of(works):
    """Per-program works (any iterable of ints) as :class:`WorkClass` es, by increasing work."""
    return merged([[WorkClass(1, work) for work in works]])


def merged(class_lists):
    """The programs of several launches' classes as one tuple of classes (an op's launches, for its median)."""
    counts = Counter()
    for classes in class_lists:
        for c in classes:
            counts[c.work] += c.programs
    return tuple(WorkClass(count, work) for work, count in sorted(counts.items()))


def programs(classes):
    return sum(c.programs for c in classes)


def total_work(classes):
    return sum(c.programs * c.work for c in classes)


def longest(classes):
    return max(c.work for c in classes)


def median(classes):
    """The median program's work (the lower median for an even count)."""
    remaining = (programs(classes) - 1) // 2
    for c in sorted(classes, key=lambda c: c.work):
        if remaining < c.programs:
            return c.work
        remaining -= c.programs
    raise ValueError("no programs")


def imbalance(classes):
    """longest / median program: the issue's bound is 4 (a launch far above it leaves SMs idle)."""
    return longest(classes) / median(classes)
