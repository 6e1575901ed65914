"""What every kernel launcher needs: NHWC views, dot precision flags, reduction workspaces."""
import contextlib
import functools

import torch
import triton

from .. import dispatch
from ..kernels import registry


def channels_last(t):
    """``t`` as a channels_last (NHWC-contiguous) tensor; a no-op when it already is one."""
    return t.contiguous(memory_format=torch.channels_last)


def empty_nhwc(n, c, h, w, like):
    """An uninitialised channels_last (N, C, H, W) tensor with ``like``'s dtype and device."""
    return torch.empty((n, c, h, w), dtype=like.dtype, device=like.device, memory_format=torch.channels_last)


def accumulation_dtype(dtype):
    """fp64 for fp64 tensors, fp32 otherwise: the type of statistics, channel sums and the
    reduction trees' partials."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def eval_statistics(running, dtype):
    """The running statistics (mean, var, ...) end to end in ``dtype``: what an eval-mode forward
    normalised with, copied for its backward while autograd records. (Saving the buffers themselves
    would not do: ops that may update them count as modifying them, and autograd's version check
    would then refuse a backward after a second eval forward.)"""
    return torch.cat(list(running)).to(dtype)


def dot_flags(dtype):
    """(INPUT_PRECISION, UPCAST) constexprs of helpers.dot_accumulate for tensors of ``dtype``.

    fp32 products use TF32 exactly when PyTorch's convolutions would (cudnn.allow_tf32). The
    interpreter computes bf16 products wrongly, so there they run in fp32 on exact operands.
    """
    if dtype == torch.float32:
        precision = "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
    elif dtype == torch.float64:
        precision = "ieee"
    else:
        precision = "tf32"
    return precision, dtype == torch.bfloat16 and dispatch.interpreting()


_counters = {}  # (device, stream) -> int32 buffer, zero between launches
_held_by_graphs = []  # buffers a CUDA graph captured: its replays address them for the process's life


def current_stream(device):
    """The stream a launch on ``device`` enqueues to: that device's current CUDA stream (None off CUDA,
    where launches run one at a time)."""
    return torch.cuda.current_stream(device) if device.type == "cuda" else None


def counters(device, size):
    """Zeroed int32 arrival counters (at least ``size``) for last-program reductions on ``device``,
    private to the current stream of ``device``.

    Each finishing program resets its counter to zero, so launches that follow one another on a
    stream reuse the buffer without a memset; launches that may run at the same time (two streams,
    a CUDA graph replayed beside eager work) get different buffers. A launch killed midway is
    handled by :func:`launch_config`. A CUDA graph capture allocates nothing: the capture stream's
    buffer must exist, from an eager step on that stream, and stays alive as long as the process,
    since the graph's replays address it.
    """
    device = torch.device(device)
    key = (device, current_stream(device))
    buffer = _counters.get(key)
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    if buffer is None or buffer.numel() < size:
        if capturing:
            raise RuntimeError(
                f"fasthg: this CUDA graph capture needs {size} arrival counters on {device} that no eager "
                f"launch on the capture stream allocated; run one eager step on the stream you capture on "
                f"first (warm up under `with torch.cuda.stream(s):`, then capture with `torch.cuda.graph(g, stream=s)`)")
        buffer = _counters[key] = torch.zeros(max(size, 1024), dtype=torch.int32, device=device)
    if capturing and not any(held is buffer for held in _held_by_graphs):
        _held_by_graphs.append(buffer)
    return buffer


def tree_nodes(leaves, group):
    """Nodes of the ``group``-ary reduction tree over ``leaves`` (kernels/helpers.py), leaves
    included: the rows its partials take, level after level."""
    nodes = leaves
    while leaves > 1:
        leaves = -(-leaves // group)
        nodes += leaves
    return nodes


def tree_counters(leaves, group):
    """Arrival counters of one such tree: one per node above the leaves (helpers.tree_counters)."""
    return tree_nodes(leaves, group) - leaves


def partials(tiles, channels, group, device, dtype):
    """Two [tree_nodes(tiles), channels] buffers for per-tile partial reductions of tensors of
    ``dtype`` and their tree, in its accumulation type: the kernels combine centred moments there
    (helpers.reduce_moments), safe in fp32, so fp64 is kept for fp64 tensors only."""
    buffer = torch.empty((2, tree_nodes(tiles, group), channels), dtype=accumulation_dtype(dtype), device=device)
    return buffer[0], buffer[1]


WORKSPACE_ALIGNMENT = 16  # bytes: the alignment the JIT specialises pointers on (vector loads)


def workspace(device, *parts):
    """One uninitialised allocation for a launch's scratch buffers: a 1-D view per (dtype, elements)
    of ``parts``, in order, each starting WORKSPACE_ALIGNMENT-aligned."""
    offsets, end = [], 0
    for dtype, elements in parts:
        offsets.append(end)
        size = elements * dtype.itemsize
        end += -(-size // WORKSPACE_ALIGNMENT) * WORKSPACE_ALIGNMENT
    buffer = torch.empty(end, dtype=torch.uint8, device=device)
    return [buffer[offset:offset + elements * dtype.itemsize].view(dtype)
            for offset, (dtype, elements) in zip(offsets, parts)]


MODELLED_MULTIPROCESSORS = 132  # an H100's: what launches off a GPU (meta accounting, the interpreter) are sized for


@functools.lru_cache(maxsize=None)
def multiprocessors(device):
    """Streaming multiprocessors of a CUDA ``device``; the modelled H100's elsewhere."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return MODELLED_MULTIPROCESSORS


# Parameters a kernel reads and updates in place: an autotuned launch restores them after its timing runs.
UPDATED_IN_PLACE = ("running_mean_ptr", "running_var_ptr")


def autotuning(device):
    """Whether launches on ``device`` choose among a variant's shipped tiles by timing them: on a GPU."""
    return device.type == "cuda"


def benchmark(kernel_call, quantiles):
    """How an autotuned launch times a tile: Triton's benchmarker for the active GPU."""
    return triton.runtime.driver.active.get_benchmarker()(kernel_call, quantiles=quantiles)


_autotuners = {}  # labels of the configurations -> (triton.autotune of their kernel, the tuned constexprs)


def autotuner(configs):
    """``triton.autotune`` over the tiles of registry ``configs`` (one kernel variant): each problem
    shape (the integer arguments) times every tile once per process (:func:`benchmark`) and keeps
    the fastest; the parameters UPDATED_IN_PLACE are restored after the timing runs. Returns it
    and the names of the constexprs it sets."""
    key = tuple(config.label for config in configs)
    if key not in _autotuners:
        first = configs[0]
        tuned = sorted({name for config in configs for name, value in config.constexprs.items()
                        if value != first.constexprs[name]})
        tiles = [triton.Config({name: config.constexprs[name] for name in tuned}, num_warps=config.num_warps,
                               num_stages=config.num_stages) for config in configs]
        sizes = [name for name, kind in first.signature.items() if kind == "i32"]
        restored = [name for name in UPDATED_IN_PLACE if name in first.signature]
        timing = lambda kernel_call, quantiles: benchmark(kernel_call, quantiles)  # noqa: E731 (read at each call)
        _autotuners[key] = (triton.autotune(tiles, key=sizes, restore_value=restored, do_bench=timing)(first.kernel),
                            tuned)
    return _autotuners[key]


def launch_config(config, grid, *args, constexprs=None, alternatives=(), **named):
    """Launches registry configuration ``config``'s kernel over ``grid`` with its warps and stages:
    ``args`` by position or ``named`` by parameter name, then ``constexprs`` by keyword (the
    configuration's own by default). Named arguments must be exactly the parameters the
    configuration's variant takes (``config.signature``); the others are passed None.

    ``grid`` may be a function of the constexprs. With ``alternatives`` (other tiles of the same
    variant, registry.alternatives) on a GPU, the launch is autotuned (:func:`autotuner`): the
    arguments must then suit every tile (workspaces sized for the largest grid).

    Triton launches on the current CUDA device, so the launch enters the device of its first
    tensor (a model on cuda:1 would otherwise run on device 0 with device 1's pointers). A launch
    that raises midway (the interpreter interrupted, a launch error) may leave arrival counters
    of its stream nonzero, which would corrupt every later reduction there: they are zeroed,
    in stream order, before the error propagates.
    """
    if named:
        missing = [name for name in config.signature if name not in named]
        unused = [name for name in named if name not in config.signature]
        if missing or unused:
            raise TypeError(f"{config.label}: arguments missing {missing}, not taken by this variant {unused}")
        named = {**dict.fromkeys(config.absent), **named}
    device = next(arg.device for arg in (*args, *named.values()) if isinstance(arg, torch.Tensor))
    constexprs = config.constexprs if constexprs is None else constexprs
    if alternatives and autotuning(device):
        kernel, tuned = autotuner((config, *alternatives))
        constexprs, settings = {k: v for k, v in constexprs.items() if k not in tuned}, {}
    else:
        kernel, settings = config.kernel, dict(num_warps=config.num_warps, num_stages=config.num_stages)
        grid = grid(constexprs) if callable(grid) else grid
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        try:
            kernel[grid](*args, **named, **constexprs, **settings)
        except BaseException:
            stale = _counters.get((device, current_stream(device)))
            if stale is not None:
                stale.zero_()
            raise


def statistics_workspace(grid, channels, group, device, dtype):
    """(partials, partials, counters) of per-channel reductions over the row tiles of a
    (row tiles, column blocks) grid of tensors of ``dtype``: one reduction tree of ``group``
    children per node per column block."""
    return (*partials(grid[0], channels, group, device, dtype),
            counters(device, grid[1] * tree_counters(grid[0], group)))


def _pixel_grid(config, channels, pixels):
    return triton.cdiv(pixels, config.constexprs["BLOCK_P"]), triton.cdiv(channels, config.constexprs["BLOCK_C"])


# Programs per multiprocessor below which a pixel launch takes its variant's fine tile (kernels/registry.py)
FINE_TILES_BELOW = 4


def launch_pixel_tiles(name, pixels, out_stats=None, momentum=0.0, flags=None, **arguments):
    """Launches kernel ``name`` over (pixel, channel) tiles of its registry configuration (BLOCK_P,
    BLOCK_C): ``pixels`` rows of ``arguments["C"]`` channels, ``arguments`` the kernel's tensors and
    sizes by parameter name, ``flags`` the constexpr flags of its variant besides STATS. A launch
    whose tiles would give the multiprocessors fewer than FINE_TILES_BELOW programs each runs the
    variant's fine tile where one is shipped.

    With ``out_stats`` (mean, var, running mean, running var of the BN that normalises the output
    next), a kernel's STATS variant also reduces its output's batch statistics into them and
    updates the running statistics with ``momentum``; without, STATS is off and its statistics
    parameters are absent.
    """
    device, dtype = next((value.device, value.dtype) for value in arguments.values() if isinstance(value, torch.Tensor))
    config = registry.lookup(name, dtype, device, STATS=out_stats is not None, **(flags or {}))
    grid = _pixel_grid(config, arguments["C"], pixels)
    if grid[0] * grid[1] < FINE_TILES_BELOW * multiprocessors(device):
        config = registry.finer_tile(config)
        grid = _pixel_grid(config, arguments["C"], pixels)
    if out_stats is not None:
        group = config.constexprs["REDUCE_GROUP"]
        part_mean, part_m2, counter = statistics_workspace(grid, arguments["C"], group, device, dtype)
        mean, var, running_mean, running_var = out_stats
        arguments.update(part_mean_ptr=part_mean, part_m2_ptr=part_m2, counter_ptr=counter, mean_ptr=mean, var_ptr=var,
                         running_mean_ptr=running_mean, running_var_ptr=running_var, momentum=momentum)
    launch_config(config, grid, **arguments)
