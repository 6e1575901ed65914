"""Launchers of the BN-ReLU-conv kernels (kernels/conv.py, kernels/bn_stats.py).

Each function takes NHWC (channels_last) tensors, looks its tile sizes up in the registry,
computes the grid and launches one kernel with its arguments by name: only those that the
variant's constexpr flags use (the registry's ``CONDITIONAL_PARAMETERS``; the rest are None).
Weights are passed with their strides, in whatever layout they have (kernels/conv.py).
"""
from typing import NamedTuple, Optional

import torch
import triton

from ..kernels import registry
from .launch import (accumulation_dtype, counters, dot_flags, launch_config, multiprocessors, statistics_workspace,
                     tree_counters, tree_nodes, workspace)
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


class BatchNormBackward(NamedTuple):
    """What a dgrad epilogue needs to finish BN's backward: the sums of g (from an earlier launch),
    the gradient added to dL/dy (a Residual's skip branch), and optionally ``through``, the gradient
    of y from its other consumers."""
    sums: BackwardSums
    extra: torch.Tensor
    through: Optional[torch.Tensor] = None


def _config(name, dtype, device, variant):
    """The registry configuration of a conv or statistics kernel, and the constexprs it runs with:
    the dot products' input precision (TF32 or IEEE for fp32, as cudnn.allow_tf32 says) picks the
    configuration; UPCAST (bf16 products in the interpreter) is set at launch."""
    precision, upcast = dot_flags(dtype)
    dots = name.startswith("conv")
    config = registry.lookup(name, dtype, device, **variant, **({"INPUT_PRECISION": precision} if dots else {}))
    return config, {**config.constexprs, **variant, **({"UPCAST": upcast} if dots else {})}


def _launch(config, constexprs, grid, alternatives=(), **arguments):
    launch_config(config, grid, constexprs=constexprs, alternatives=alternatives, **arguments)


def _statistics_arguments(grid, channels, constexprs, like):
    """The per-channel reduction workspace (partials and arrival counters) of a (row tiles, column
    blocks) grid over tensors like ``like``, one reduction tree per column block, as the kernels' arguments."""
    part_mean, part_m2, counter = statistics_workspace(grid, channels, constexprs["REDUCE_GROUP"], like.device,
                                                       like.dtype)
    return dict(part_mean_ptr=part_mean, part_m2_ptr=part_m2, counter_ptr=counter)


def _weight_arguments(prefix, weight):
    """A conv weight (or its gradient) [C_out, C_in, K, K] as the kernels take it: pointer and strides."""
    stride_o, stride_c, stride_h, stride_w = weight.stride()
    return {f"{prefix}_ptr": weight, f"{prefix}_stride_o": stride_o, f"{prefix}_stride_c": stride_c,
            f"{prefix}_stride_h": stride_h, f"{prefix}_stride_w": stride_w}


class WgradSplit(NamedTuple):
    """How a weight gradient's rows are split (kernels/conv.py, split-K): ``tiles`` [BLOCK_N, BLOCK_J]
    tiles of dw (and dw2), each reduced over ``slices`` row slices of ``slice_rows`` rows by as many
    programs; ``co_tiles`` BLOCK_N-blocks of output channels (of both gradients) sum dbias."""
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


def wgrad_split(rows, c_out, columns, c_skip, c_out2, dgrad_steps, constexprs, extra, device):
    """The split of a weight gradient dw[c_out, columns] (+ a skip conv's [c_out, c_skip], + WGRAD2's
    dw2[c_out2, c_out], a 1x1 conv over this conv's output) over ``rows``.

    A slice runs as many row steps as the launch allows and no more: ``extra["slice_balance"]``
    times the K-steps of the dgrad programs it shares the launch with, so that no program runs
    much longer than the launch's others, but at least the steps that still give every
    multiprocessor PROGRAMS_PER_MULTIPROCESSOR programs (a full GPU gains nothing from more
    slices, and each slice's partial tile costs traffic), and at least ``extra["min_slice_steps"]``,
    so that combining a tree node's partial tiles (up to REDUCE_GROUP of them) costs no more than a slice.
    """
    block_m, block_n, block_j = constexprs["BLOCK_M"], constexprs["BLOCK_N"], constexprs["BLOCK_J"]
    first_co_tiles, second_co_tiles = triton.cdiv(c_out, block_n), triton.cdiv(c_out2, block_n)
    tiles = first_co_tiles * (triton.cdiv(columns, block_j) + triton.cdiv(c_skip, block_j)) + \
        second_co_tiles * triton.cdiv(c_out, block_j)
    row_tiles = triton.cdiv(rows, block_m)
    filling = tiles * row_tiles // (PROGRAMS_PER_MULTIPROCESSOR * multiprocessors(device))
    steps = min(row_tiles, max(extra["min_slice_steps"], filling, extra["slice_balance"] * dgrad_steps))
    return WgradSplit(tiles, first_co_tiles + second_co_tiles, triton.cdiv(row_tiles, steps), steps * block_m)


def channel_stats(x, stats: BatchStatistics, momentum):
    """Batch mean and biased variance of NHWC ``x`` per channel; running statistics updated in place."""
    n, c, h, w = x.shape
    rows = n * h * w
    config, constexprs = _config("channel_stats", x.dtype, x.device, {"UPDATE_RUNNING": True})
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c, constexprs["BLOCK_C"]))
    _launch(config, constexprs, grid, x_ptr=x, **_statistics_arguments(grid, c, constexprs, x),
            mean_ptr=stats.mean, var_ptr=stats.var, running_mean_ptr=stats.running_mean,
            running_var_ptr=stats.running_var, M=rows, C=c, momentum=momentum)


def conv_forward(y, bn: Optional[BatchNormState], weight, bias, out, eps, *, skip=None, residual=None,
                 upsampled=None, out_stats: Optional[BatchStatistics] = None, momentum=0.0):
    """out = conv(relu(bn(y))) + bias (+ skip conv of skip[0]) (+ residual) (+ nearest x2 upsampling of
    ``upsampled``, half out's height and width); out_stats <- stats of out.

    With ``bn`` None the conv reads y as it is. ``skip`` is (x, weight, bias) of a 1x1 conv over
    the raw x, joined as concatenated K.
    ``out_stats`` receives the batch statistics of out, and its running statistics are updated.
    """
    n, c_in, h, w = y.shape
    c_out, ksize = weight.shape[0], weight.shape[-1]
    variant = dict(KSIZE=ksize, PROLOGUE=bn is not None, HAS_SKIP=skip is not None, HAS_RESIDUAL=residual is not None,
                   ADD_UPSAMPLED=upsampled is not None, STATS=out_stats is not None,
                   UPDATE_RUNNING=out_stats is not None)
    config, constexprs = _config("conv_forward", y.dtype, y.device, variant)
    alternatives = registry.alternatives(config)  # autotuned on a GPU
    rows = n * h * w

    def grid(tile):
        return triton.cdiv(rows, tile["BLOCK_M"]), triton.cdiv(c_out, tile["BLOCK_N"])

    # The statistics' workspace serves the largest grid of the tiles an autotuned launch may run.
    largest = tuple(map(max, *(grid(tile.constexprs) for tile in (config, *alternatives)))) if alternatives \
        else grid(constexprs)
    arguments = dict(y_ptr=y, **_weight_arguments("w", weight), bias_ptr=bias, out_ptr=out, N=n, H=h, W=w,
                     C_in=c_in, C_out=c_out)
    if bn is not None:
        arguments.update(mean_ptr=bn.mean, var_ptr=bn.var, bn_weight_ptr=bn.weight, bn_bias_ptr=bn.bias, eps=eps)
    if skip is not None:
        skip_x, skip_weight, skip_bias = skip
        arguments.update(skip_x_ptr=skip_x, skip_w_ptr=skip_weight.contiguous(), skip_bias_ptr=skip_bias,
                         C_skip=skip_x.shape[1])
    if residual is not None:
        arguments.update(residual_ptr=residual)
    if upsampled is not None:
        arguments.update(upsampled_ptr=upsampled)
    if out_stats is not None:
        arguments.update(_statistics_arguments(largest, c_out, constexprs, y), out_mean_ptr=out_stats.mean,
                         out_var_ptr=out_stats.var, running_mean_ptr=out_stats.running_mean,
                         running_var_ptr=out_stats.running_var, momentum=momentum)
    _launch(config, constexprs, grid, alternatives, **arguments)


def conv_backward(grad, eps, *, grad_bn=None, y=None, bn: Optional[BatchNormState] = None,
                  weight=None, dgrad_out=None, sums_out: Optional[BackwardSums] = None,
                  bn_grads_out: Optional[BackwardSums] = None, dweight=None, dbias=None, skip_x=None,
                  skip_dweight=None, skip_dbias=None, second=None, complete_second=None, second_wgrad=None,
                  finish_bn: Optional[BatchNormBackward] = None):
    """One launch of dgrad and/or wgrad of z = conv(relu(bn(y))) + bias (y as it is with ``bn`` None).

    dz is ``grad``, or with ``grad_bn`` = (z, BatchNormState, BackwardSums) rebuilt from the next
    BN's g. dgrad (``dgrad_out`` given) writes dL/da with ``weight``; ``second`` = (grad2, weight2)
    adds the dgrad of a second conv that reads the same a: dL/da over concatenated K
    [grad | grad2] x [weight ; weight2], without the concatenation in memory. With
    ``complete_second`` = (weight3, grad2_out) (1x1 convs) the second conv's output also feeds a
    conv with 1x1 ``weight3`` [C_out, C_out2] whose output's gradient is ``grad``: the kernel
    completes grad2 + grad weight3 per tile and writes it to ``grad2_out``. With ``sums_out`` its
    epilogue applies the ReLU mask of relu(bn(y)) and reduces BN's backward sums, which are also
    written to ``bn_grads_out`` (d bias, d weight of that BN, in its parameters' dtype); without
    ``dgrad_out`` it stores nothing else (SUMS_ONLY). With ``finish_bn`` instead, ``dgrad_out``
    receives dL/dy: the ReLU mask and BN's backward with the given sums applied to dL/da, plus
    ``finish_bn.extra`` (and ``.through``). wgrad
    (``dweight`` given) writes dL/dw and dL/dbias with relu(bn(y)) recomputed; ``skip_x`` adds
    the weight gradient of a 1x1 skip conv over it (into ``skip_dweight``), and its bias gradient,
    equal to dL/dbias, into ``skip_dbias``. ``second_wgrad`` = (grad2, dweight2, dbias2), with
    ``grad_bn``, adds the weight and bias gradients of a 1x1 conv over relu(bn(z)), the grad_bn
    BN's output, whose output's gradient is grad2.
    """
    # The skip conv's weight gradient and bias gradient are written together, from skip_x.
    assert (skip_x is None) == (skip_dweight is None) == (skip_dbias is None), \
        "skip_x needs skip_dweight and skip_dbias"
    assert second is None or second_wgrad is None, "one second gradient: second's dgrad or second_wgrad's wgrad"
    if complete_second is not None:
        weight3, grad2_out = complete_second
        assert second is not None and weight.shape[-1] == 1 and \
            weight3.shape == (grad.shape[1], second[0].shape[1], 1, 1), \
            "complete_second: 1x1 convs, weight3 [C_out of grad, C_out2 of second's gradient, 1, 1]"
        assert grad2_out is not second[0], "grad2_out must not be grad2: other channel tiles read it"
    assert second_wgrad is None or (grad_bn is not None and dweight is not None), \
        "second_wgrad reads relu(bn(z)) of grad_bn, in a launch with a weight gradient"
    n, c_out, h, w = grad.shape
    dgrad, wgrad = dgrad_out is not None or sums_out is not None, dweight is not None
    ksize = (weight if dgrad else dweight).shape[-1]
    variant = dict(KSIZE=ksize, GRAD_BN=grad_bn is not None, WGRAD=wgrad, PROLOGUE=wgrad and bn is not None,
                   HAS_SKIP=skip_x is not None, DGRAD=dgrad, SECOND_GRAD=second is not None,
                   COMPLETE_GRAD2=complete_second is not None, EPILOGUE_BN=sums_out is not None,
                   SUMS_ONLY=dgrad_out is None and sums_out is not None,
                   APPLY_BN=finish_bn is not None, HAS_THROUGH=finish_bn is not None and finish_bn.through is not None,
                   WGRAD2=second_wgrad is not None)
    epilogue_bn = sums_out is not None or finish_bn is not None
    config, constexprs = _config("conv_backward", grad.dtype, grad.device, variant)
    rows = n * h * w
    block_m, block_n, group = constexprs["BLOCK_M"], constexprs["BLOCK_N"], constexprs["REDUCE_GROUP"]
    row_tiles = triton.cdiv(rows, block_m)
    arguments = dict(grad_ptr=grad, N=n, H=h, W=w, C_out=c_out)
    if grad_bn is not None:
        z, z_bn, z_sums = grad_bn
        arguments.update(z_ptr=z, z_mean_ptr=z_bn.mean, z_var_ptr=z_bn.var, z_weight_ptr=z_bn.weight,
                         z_sum_grad_ptr=z_sums.grad, z_sum_grad_xhat_ptr=z_sums.grad_xhat)
    if wgrad or epilogue_bn:
        arguments.update(y_ptr=y)
    if variant["PROLOGUE"] or epilogue_bn:
        arguments.update(y_mean_ptr=bn.mean, y_var_ptr=bn.var, y_weight_ptr=bn.weight, y_bias_ptr=bn.bias)
    if grad_bn is not None or variant["PROLOGUE"] or epilogue_bn:
        arguments.update(eps=eps)

    dgrad_blocks = triton.cdiv(weight.shape[1], block_n) if dgrad else 0
    sums_counters = dgrad_blocks * tree_counters(row_tiles, group) if sums_out is not None else 0
    sums_nodes = tree_nodes(row_tiles, group) * weight.shape[1] if sums_out is not None else 0
    grad2 = second[0] if second is not None else second_wgrad[0] if second_wgrad is not None else None
    c_out2 = grad2.shape[1] if grad2 is not None else 0
    block_k = constexprs["BLOCK_K"]
    # K-steps of a dgrad program: completing grad2 (COMPLETE_GRAD2) runs over grad's K per step of grad2's.
    second_steps = triton.cdiv(c_out2, block_k) * (triton.cdiv(c_out, block_k) if complete_second is not None else 1)
    dgrad_steps = ksize * ksize * (triton.cdiv(c_out, block_k) + (second_steps if second is not None else 0))
    split = wgrad_split(rows, c_out, dweight.shape[1] * ksize * ksize, skip_x.shape[1] if skip_x is not None else 0,
                        c_out2 if second_wgrad is not None else 0, dgrad_steps if dgrad else 0, constexprs,
                        config.extra, grad.device) if wgrad else None
    wgrad_nodes = tree_nodes(split.slices, group) if wgrad and split.slices > 1 else 0
    acc = accumulation_dtype(grad.dtype)
    part_first, part_second, part_dw, part_dbias = workspace(
        grad.device, (acc, sums_nodes), (acc, sums_nodes),
        (acc, wgrad_nodes * split.tiles * block_n * constexprs["BLOCK_J"] if wgrad else 0),
        (acc, wgrad_nodes * split.co_tiles * block_n if wgrad else 0))
    counter = counters(grad.device, sums_counters + (split.tiles * tree_counters(split.slices, group) if wgrad else 0))
    if dgrad:
        arguments.update(**_weight_arguments("w", weight), C_dgrad=weight.shape[1])
    if dgrad_out is not None:
        arguments.update(out_ptr=dgrad_out)
    if grad2 is not None:
        arguments.update(grad2_ptr=grad2, C_out2=c_out2)
    if second is not None and dgrad:
        arguments.update(_weight_arguments("w2", second[1]))
    if complete_second is not None:
        weight3, grad2_out = complete_second
        arguments.update(w3_ptr=weight3, w3_stride_o=weight3.stride(0), w3_stride_c=weight3.stride(1),
                         grad2_out_ptr=grad2_out)
    if second_wgrad is not None:
        _, dweight2, dbias2 = second_wgrad
        arguments.update(_weight_arguments("dw2", dweight2), dbias2_ptr=dbias2, z_bias_ptr=grad_bn[1].bias)
    if sums_out is not None:
        copies = bn_grads_out if bn_grads_out is not None else sums_out
        arguments.update(part_first_ptr=part_first, part_second_ptr=part_second, counter_ptr=counter,
                         sum_grad_ptr=sums_out.grad, sum_grad_xhat_ptr=sums_out.grad_xhat,
                         bn_dbias_ptr=copies.grad, bn_dweight_ptr=copies.grad_xhat)
    if finish_bn is not None:
        arguments.update(sum_grad_ptr=finish_bn.sums.grad, sum_grad_xhat_ptr=finish_bn.sums.grad_xhat,
                         extra_ptr=finish_bn.extra)
        if finish_bn.through is not None:
            arguments.update(through_ptr=finish_bn.through)
    if wgrad:
        arguments.update(**_weight_arguments("dw", dweight), dbias_ptr=dbias, part_dw_ptr=part_dw,
                         part_dbias_ptr=part_dbias, wgrad_counter_ptr=counter[sums_counters:],
                         wgrad_programs=split.programs, slice_rows=split.slice_rows, C_wgrad=dweight.shape[1])
    if skip_x is not None:
        arguments.update(skip_x_ptr=skip_x, skip_dw_ptr=skip_dweight, skip_dbias_ptr=skip_dbias,
                         C_skip=skip_x.shape[1])
    programs = (split.programs if wgrad else 0) + row_tiles * dgrad_blocks
    _launch(config, constexprs, (programs,), **arguments)
