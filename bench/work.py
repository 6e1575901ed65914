"""The serial work of every program of a Triton launch, read off the kernels' loop trip counts.

A GPU runs a launch's programs concurrently, so a launch lasts at least as long as its longest
program (docs/what_the_interpreter_hides.md). The wave model (:mod:`bench.wave`) needs, per
launch, how much work each program does; :func:`program_work` gives it from a :class:`bench.launches.TritonLaunch` (its grid
and every argument by name, constexprs included), without running anything.

**The unit of work is one tile step**: one iteration of a program's innermost loop (a K-step of a
GEMM with its ``tl.dot``, the combine of a reduction-tree node's children, a pixel block of a
heatmap); a program that runs no loop does one step, its single tile. Steps of different kinds
(a 64x64x16 product, a combine of 8 partial rows) count alike: the model compares programs within
a launch, and most launches have one kind of step.

Each kernel has one function ``(grid, arguments) -> [WorkClass]`` in :data:`WORK`, with the
kernel's and its launcher's own arithmetic; grids reach tens of thousands of programs, so the
result is compact: classes of (number of programs, steps each). A reduction tree's node is
combined by the last of its children's programs to arrive (decided at run time; in the
interpreter, which runs programs in index order, the last leaf under the node: :func:`tree_steps`).
``tests/test_wave_model.py`` counts every program's loop iterations in the interpreter and checks
them against these functions, so a kernel whose loops change fails there until its function does.
"""
from collections import Counter
from typing import NamedTuple



class WorkClass(NamedTuple):
    """``programs`` programs of a launch, each running ``work`` tile steps."""
    programs: int
    work: int


def _cdiv(a, b):
    return -(-a // b)


def _classes(*pairs):
    """The (programs, work) pairs with any programs, as WorkClasses."""
    return [WorkClass(programs, work) for programs, work in pairs if programs > 0]


def tree_steps(leaves, group):
    """{leaf: combine steps} of the programs that complete nodes of a ``group``-ary reduction tree
    over ``leaves`` (kernels/helpers.py), arriving in index order as in the interpreter: node k of
    level l is completed by the last leaf under it, min((k + 1) group^l, leaves) - 1, at the cost
    of its number of children (they load one per step)."""
    steps, count, span = Counter(), leaves, 1
    while count > 1:
        parents, span = _cdiv(count, group), span * group
        for node in range(parents):
            children = min(group, count - node * group)
            steps[min((node + 1) * span, leaves) - 1] += children
        count = parents
    return steps


def _with_tree(leaves, trees, work, group):
    """``trees`` reductions over ``leaves`` programs each doing ``work`` steps, plus each program's
    combine steps."""
    extra = tree_steps(leaves, group)
    completing = [(trees, work + steps) for steps in extra.values()]
    return _classes((trees * (leaves - len(extra)), work), *completing)


def conv_forward_work(grid, a):
    """One program per [BLOCK_M, BLOCK_N] output tile: KSIZE^2 ceil(C_in / BLOCK_K) K-steps, plus
    ceil(C_skip / BLOCK_K) with HAS_SKIP. With STATS the grid[0] row tiles' moments climb a tree
    whose nodes each load their (at most REDUCE_GROUP) children as one small tile: not counted (a
    node is 2 x REDUCE_GROUP x BLOCK_N fp64 numbers, less than one K-step's operands)."""
    row_tiles, column_tiles = grid
    steps = a["KSIZE"] ** 2 * _cdiv(a["C_in"], a["BLOCK_K"]) + (_cdiv(a["C_skip"], a["BLOCK_K"]) if a["HAS_SKIP"] else 0)
    return _classes((row_tiles * column_tiles, steps))


def conv_backward_work(grid, a):
    """A 1-D grid: first the wgrad programs, one per (row slice, tile of dw or WGRAD2's dw2):
    ceil(slice rows / BLOCK_M) steps (the last slice may be shorter), and each tile's slices added up a tree whose node costs
    one step per child tile; then the dgrad programs, KSIZE^2 ceil(C_out / BLOCK_K) steps each (and
    KSIZE^2 ceil(C_out2 / BLOCK_K) more with SECOND_GRAD, each of them ceil(C_out / BLOCK_K) steps
    completing grad2 with COMPLETE_GRAD2), with
    EPILOGUE_BN each of the ceil(C_dgrad / BLOCK_N) column blocks reducing its row tiles' sums up a
    tree (one step per child)."""
    (programs,) = grid
    rows, block_m, block_k = a["N"] * a["H"] * a["W"], a["BLOCK_M"], a["BLOCK_K"]
    classes, wgrad = [], 0
    if a["WGRAD"]:
        co_tiles = _cdiv(a["C_out"], a["BLOCK_N"])
        tiles = co_tiles * (_cdiv(a["C_wgrad"] * a["KSIZE"] ** 2, a["BLOCK_J"])
                            + (_cdiv(a["C_skip"], a["BLOCK_J"]) if a["HAS_SKIP"] else 0))
        if a["WGRAD2"]:  # the 1x1 second conv's dw2 tiles, over this conv's C_out output channels
            tiles += _cdiv(a["C_out2"], a["BLOCK_N"]) * _cdiv(a["C_out"], a["BLOCK_J"])
        slices = _cdiv(rows, a["slice_rows"])
        wgrad = tiles * slices
        last_slice = _cdiv(rows - (slices - 1) * a["slice_rows"], block_m)
        extra = tree_steps(slices, a["REDUCE_GROUP"])
        full = a["slice_rows"] // block_m
        work = Counter()
        for index in range(slices):
            work[(last_slice if index == slices - 1 else full) + extra.get(index, 0)] += tiles
        classes += _classes(*((count, steps) for steps, count in work.items()))
    dgrad = programs - wgrad if a["DGRAD"] else 0
    if dgrad:
        steps = _cdiv(a["C_out"], block_k)
        if a["SECOND_GRAD"]:
            steps += _cdiv(a["C_out2"], block_k) * (_cdiv(a["C_out"], block_k) if a["COMPLETE_GRAD2"] else 1)
        steps *= a["KSIZE"] ** 2
        if a["EPILOGUE_BN"]:
            row_tiles = _cdiv(rows, block_m)
            classes += _with_tree(row_tiles, dgrad // row_tiles, steps, a["REDUCE_GROUP"])
        else:
            classes += _classes((dgrad, steps))
    return classes


def channel_stats_work(grid, a):
    """One [BLOCK_M, BLOCK_C] tile per program (one step); the moments' tree nodes are not counted,
    as in conv_forward_work (a node's 2 x REDUCE_GROUP x BLOCK_C fp64 numbers are about a tile's
    bytes: the programs completing the log_REDUCE_GROUP(grid[0]) levels of a tree do up to that many
    tiles' worth more)."""
    row_tiles, channel_tiles = grid
    return _classes((row_tiles * channel_tiles, 1))


def single_tile_work(grid, a):
    """A kernel without loops: every program does its one tile (upsample-add, max-pool, rendering);
    the statistics trees of upsample-add and max-pool with STATS are not counted, as in
    channel_stats_work."""
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
