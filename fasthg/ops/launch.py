"""What every kernel launcher needs: NHWC views, dot precision flags, reduction workspaces."""
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
    """fp64 for fp64 tensors, fp32 otherwise: the type of statistics and channel sums."""
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


_counters = {}


def counters(device, size):
    """Zeroed int32 arrival counters for last-program reductions on ``device``.

    Each finishing program resets its counter to zero, so kernels on one stream reuse them.
    """
    key = str(device)
    if key not in _counters or _counters[key].numel() < size:
        _counters[key] = torch.zeros(max(size, 1024), dtype=torch.int32, device=device)
    return _counters[key]


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


def partials(tiles, channels, group, device):
    """Two fp64 [tree_nodes(tiles), channels] buffers for per-tile partial reductions and their tree."""
    buffer = torch.empty((2, tree_nodes(tiles, group), channels), dtype=torch.float64, device=device)
    return buffer[0], buffer[1]


MODELLED_MULTIPROCESSORS = 132  # an H100's: what launches off a GPU (meta accounting, the interpreter) are sized for


@functools.lru_cache(maxsize=None)
def multiprocessors(device):
    """Streaming multiprocessors of a CUDA ``device``; the modelled H100's elsewhere."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return MODELLED_MULTIPROCESSORS


def launch_config(config, grid, *args, constexprs=None):
    """Launches registry configuration ``config``'s kernel over ``grid`` with its warps and stages:
    ``args``, then ``constexprs`` by keyword (the configuration's own by default)."""
    config.kernel[grid](*args, **(config.constexprs if constexprs is None else constexprs),
                        num_warps=config.num_warps, num_stages=config.num_stages)


def launch_pixel_tiles(name, tensors, sizes, pixels):
    """Launches kernel ``name`` over (pixel, channel) tiles: ``pixels`` rows of C = sizes[1] channels.

    The kernel takes ``*tensors, *sizes`` and its registry configuration's BLOCK_P, BLOCK_C.
    """
    config = registry.lookup(name, tensors[0].dtype, tensors[0].device)
    grid = (triton.cdiv(pixels, config.constexprs["BLOCK_P"]), triton.cdiv(sizes[1], config.constexprs["BLOCK_C"]))
    launch_config(config, grid, *tensors, *sizes)
