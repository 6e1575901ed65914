"""Launchers of the BN-ReLU-conv kernels (kernels/conv.py, kernels/bn_stats.py).

Each function takes NHWC (channels_last) tensors, looks its tile sizes up in the registry,
computes the grid and launches one kernel. Unused pointer arguments receive a tensor the
kernel never touches (``unused``), since their constexpr flags compile the access away.
"""
from typing import NamedTuple, Optional

import torch
import triton

from ..kernels import registry
from .launch import (accumulation_dtype, counters, dot_flags, launch_config, multiprocessors, partials,
                     statistics_workspace, tree_counters, tree_nodes)
from .statistics import BatchStatistics


class BatchNormState(NamedTuple):
    """One BN as the kernels see it: statistics to normalise with and the affine parameters."""
    mean: torch.Tensor
    var: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


class BackwardSums(NamedTuple):
    """sum(g) and sum(g * xhat) per channel, for turning g = dL/d bn(y) into dL/dy."""
    grad: torch.Tensor
    grad_xhat: torch.Tensor


def _config(name, dtype, device, variant):
    """The registry configuration of a conv or statistics kernel, and the constexprs it runs with:
    the dot products' input precision (TF32 or IEEE for fp32, as cudnn.allow_tf32 says) picks the
    configuration; UPCAST (bf16 products in the interpreter) is set at launch."""
    precision, upcast = dot_flags(dtype)
    dots = name.startswith("conv")
    config = registry.lookup(name, dtype, device, **variant, **({"INPUT_PRECISION": precision} if dots else {}))
    return config, {**config.constexprs, **variant, **({"UPCAST": upcast} if dots else {})}


def _launch(config, constexprs, grid, *args):
    launch_config(config, grid, *args, constexprs=constexprs)


class WgradSplit(NamedTuple):
    """How a weight gradient's rows are split (kernels/conv.py, split-K): ``tiles`` [BLOCK_N, BLOCK_J]
    tiles of dw, each reduced over ``slices`` row slices of ``slice_rows`` rows by as many programs."""
    tiles: int
    co_tiles: int
    slices: int
    slice_rows: int

    @property
    def programs(self):
        return self.tiles * self.slices


# Weight-gradient programs a launch should give each multiprocessor: the split-K conv tiles keep
# 2-5 programs resident per SM (AOT report), and a launch needs every slot busy to the end.
PROGRAMS_PER_MULTIPROCESSOR = 4


def wgrad_split(rows, c_out, columns, c_skip, dgrad_steps, constexprs, extra, device):
    """The split of a weight gradient dw[c_out, columns] (+ a skip conv's [c_out, c_skip]) over ``rows``.

    A slice runs as many row steps as the launch allows and no more: ``extra["slice_balance"]``
    times the K-steps of the dgrad programs it shares the launch with, so that no program runs
    much longer than the launch's others, but at least the steps that still give every
    multiprocessor PROGRAMS_PER_MULTIPROCESSOR programs (a full GPU gains nothing from more
    slices, and each slice's partial tile costs traffic), and at least ``extra["min_slice_steps"]``,
    so that combining a tree node's partial tiles (up to REDUCE_GROUP of them) costs no more than a slice.
    """
    block_m, block_n, block_j = constexprs["BLOCK_M"], constexprs["BLOCK_N"], constexprs["BLOCK_J"]
    co_tiles = triton.cdiv(c_out, block_n)
    tiles = co_tiles * (triton.cdiv(columns, block_j) + triton.cdiv(c_skip, block_j))
    row_tiles = triton.cdiv(rows, block_m)
    filling = tiles * row_tiles // (PROGRAMS_PER_MULTIPROCESSOR * multiprocessors(device))
    steps = min(row_tiles, max(extra["min_slice_steps"], filling, extra["slice_balance"] * dgrad_steps))
    return WgradSplit(tiles, co_tiles, triton.cdiv(row_tiles, steps), steps * block_m)


def channel_stats(x, stats: BatchStatistics, momentum):
    """Batch mean and biased variance of NHWC ``x`` per channel; running statistics updated in place."""
    n, c, h, w = x.shape
    rows = n * h * w
    config, constexprs = _config("channel_stats", x.dtype, x.device, {"UPDATE_RUNNING": True})
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c, constexprs["BLOCK_C"]))
    _launch(config, constexprs, grid, x, *statistics_workspace(grid, c, constexprs["REDUCE_GROUP"], x.device), *stats, rows, c, momentum)


def conv_forward(y, bn: Optional[BatchNormState], weight, bias, out, eps, *, skip=None, residual=None,
                 out_stats: Optional[BatchStatistics] = None, momentum=0.0):
    """out = conv(relu(bn(y))) + bias (+ skip conv of skip[0]) (+ residual); out_stats <- stats of out.

    With ``bn`` None the conv reads y as it is. ``skip`` is (x, weight, bias) of a 1x1 conv over
    the raw x, joined as concatenated K.
    ``out_stats`` receives the batch statistics of out, and its running statistics are updated.
    """
    n, c_in, h, w = y.shape
    c_out, ksize = weight.shape[0], weight.shape[-1]
    weight = weight.contiguous()  # the kernels read [C_out, C_in, K, K] rows (a channels_last model's are not)
    variant = dict(KSIZE=ksize, PROLOGUE=bn is not None, HAS_SKIP=skip is not None, HAS_RESIDUAL=residual is not None,
                   STATS=out_stats is not None, UPDATE_RUNNING=out_stats is not None)
    config, constexprs = _config("conv_forward", y.dtype, y.device, variant)
    bn = bn if bn is not None else (bias,) * 4
    rows = n * h * w
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c_out, constexprs["BLOCK_N"]))
    skip_x, skip_weight, skip_bias = skip if skip is not None else (y, weight, bias)
    skip_weight = skip_weight.contiguous()
    if out_stats is not None:
        stats_args = (*statistics_workspace(grid, c_out, constexprs["REDUCE_GROUP"], y.device), *out_stats)
    else:
        stats_args = (bias, bias, bias, bias, bias, bias, bias)
    _launch(config, constexprs, grid, y, *bn, weight, bias, skip_x, skip_weight, skip_bias,
            residual if residual is not None else out, out, *stats_args,
            n, h, w, c_in, c_out, skip_x.shape[1], eps, momentum)


def conv_backward(grad, eps, *, grad_bn=None, y=None, bn: Optional[BatchNormState] = None,
                  weight=None, dgrad_out=None, sums_out: Optional[BackwardSums] = None,
                  bn_grads_out: Optional[BackwardSums] = None, dweight=None, dbias=None, skip_x=None,
                  skip_dweight=None, skip_dbias=None):
    """One launch of dgrad and/or wgrad of z = conv(relu(bn(y))) + bias (y as it is with ``bn`` None).

    dz is ``grad``, or with ``grad_bn`` = (z, BatchNormState, BackwardSums) rebuilt from the next
    BN's g. dgrad (``dgrad_out`` given) writes dL/da with ``weight``; with ``sums_out`` its
    epilogue applies the ReLU mask of relu(bn(y)) and reduces BN's backward sums, which are also
    written to ``bn_grads_out`` (d bias, d weight of that BN, in its parameters' dtype). wgrad
    (``dweight`` given) writes dL/dw and dL/dbias with relu(bn(y)) recomputed; ``skip_x`` adds
    the weight gradient of a 1x1 skip conv over it (into ``skip_dweight``), and its bias gradient,
    equal to dL/dbias, into ``skip_dbias``.
    """
    # The kernel writes the skip conv's gradients whenever skip_x is given (else into a placeholder).
    assert (skip_x is None) == (skip_dweight is None) == (skip_dbias is None), \
        "skip_x needs skip_dweight and skip_dbias"
    n, c_out, h, w = grad.shape
    dgrad, wgrad = dgrad_out is not None, dweight is not None
    ksize = (weight if dgrad else dweight).shape[-1]
    weight = weight.contiguous() if dgrad else None  # read as [C_out, C_in, K, K] rows
    assert not wgrad or dweight.is_contiguous() and (skip_dweight is None or skip_dweight.is_contiguous()), \
        "weight gradients are written as contiguous [C_out, C_in, K, K]"
    variant = dict(KSIZE=ksize, GRAD_BN=grad_bn is not None, WGRAD=wgrad, PROLOGUE=wgrad and bn is not None,
                   HAS_SKIP=skip_x is not None, DGRAD=dgrad, EPILOGUE_BN=sums_out is not None)
    config, constexprs = _config("conv_backward", grad.dtype, grad.device, variant)
    rows = n * h * w
    c_dgrad = weight.shape[1] if dgrad else 0
    c_wgrad = dweight.shape[1] if wgrad else 0
    c_skip = skip_x.shape[1] if skip_x is not None else 0
    unused = grad
    row_tiles, dgrad_blocks = triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c_dgrad, constexprs["BLOCK_N"])
    group = constexprs["REDUCE_GROUP"]
    sums_counters = dgrad_blocks * tree_counters(row_tiles, group) if sums_out is not None else 0
    dgrad_steps = ksize * ksize * triton.cdiv(c_out, constexprs["BLOCK_K"]) if dgrad else 0
    split = wgrad_split(rows, c_out, c_wgrad * ksize * ksize, c_skip, dgrad_steps, constexprs,
                        config.extra, grad.device) if wgrad else None
    wgrad_counters = split.tiles * tree_counters(split.slices, group) if wgrad else 0
    counter = counters(grad.device, sums_counters + wgrad_counters)
    programs = (split.programs if wgrad else 0) + (row_tiles * dgrad_blocks if dgrad else 0)
    z, z_bn, z_sums = grad_bn if grad_bn is not None else (grad, None, None)
    z_args = (z, z_bn.mean, z_bn.var, z_bn.weight, *z_sums) if grad_bn is not None else (grad,) * 6
    y_args = (y, *bn) if bn is not None else (y if y is not None else grad,) * 5
    if sums_out is not None:
        copies = bn_grads_out if bn_grads_out is not None else sums_out
        sums_args = (*partials(row_tiles, c_dgrad, group, grad.device), counter, *sums_out, *copies)
    else:
        sums_args = (unused,) * 7
    if wgrad and split.slices > 1:
        nodes = tree_nodes(split.slices, group)
        block_n = constexprs["BLOCK_N"]
        acc = accumulation_dtype(grad.dtype)
        wgrad_args = (torch.empty(nodes * split.tiles * block_n * constexprs["BLOCK_J"], dtype=acc, device=grad.device),
                      torch.empty(nodes * split.co_tiles * block_n, dtype=acc, device=grad.device),
                      counter[sums_counters:], split.slice_rows)
    else:
        wgrad_args = (unused, unused, counter, split.slice_rows if wgrad else rows)
    _launch(config, constexprs, (programs,), grad, *z_args, *y_args,
            weight if dgrad else unused, dgrad_out if dgrad else unused, *sums_args,
            skip_x if skip_x is not None else unused, dweight if wgrad else unused,
            dbias if wgrad else unused, skip_dweight if skip_dweight is not None else unused,
            skip_dbias if skip_dbias is not None else unused, *wgrad_args,
            n, h, w, c_out, c_dgrad, c_wgrad, c_skip, eps)


def bn_backward_apply(grad, x, bn: BatchNormState, sums: BackwardSums, out, eps, extra=None):
    """out = dL/dx of BN from g = ``grad`` and the channel sums, plus ``extra`` (the skip's gradient)."""
    n, c, h, w = x.shape
    rows = n * h * w
    config, constexprs = _config("bn_backward_apply", x.dtype, x.device, {"HAS_EXTRA": extra is not None})
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c, constexprs["BLOCK_C"]))
    _launch(config, constexprs, grid, grad, x, bn.mean, bn.var, bn.weight, *sums,
            extra if extra is not None else out, out, rows, c, eps)
