"""Launchers of the BN-ReLU-conv kernels (kernels/conv.py, kernels/bn_stats.py).

Each function takes NHWC (channels_last) tensors, looks its tile sizes up in the registry,
computes the grid and launches one kernel. Unused pointer arguments receive a tensor the
kernel never touches (``unused``), since their constexpr flags compile the access away.
"""
from typing import NamedTuple, Optional

import torch
import triton

from ..kernels import registry
from ..kernels.bn_stats import bn_backward_apply_kernel, channel_stats_kernel
from ..kernels.conv import conv_dgrad_kernel, conv_forward_kernel, conv_wgrad_kernel
from .launch import counters, dot_flags, partials


class BatchNormState(NamedTuple):
    """One BN as the kernels see it: statistics to normalise with and the affine parameters."""
    mean: torch.Tensor
    var: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


class BatchStatistics(NamedTuple):
    """Where a kernel writes the batch statistics it reduces, and the running ones it updates."""
    mean: torch.Tensor
    var: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor


class BackwardSums(NamedTuple):
    """sum(g) and sum(g * xhat) per channel, for turning g = dL/d bn(y) into dL/dy."""
    grad: torch.Tensor
    grad_xhat: torch.Tensor


def _config(name, dtype, device, variant):
    config = registry.lookup(name, dtype, device, **variant)
    precision, upcast = dot_flags(dtype)
    extra = {"INPUT_PRECISION": precision, "UPCAST": upcast} if "INPUT_PRECISION" in config.constexprs else {}
    return config, {**config.constexprs, **variant, **extra}


def _launch(config, constexprs, grid, *args):
    config.kernel[grid](*args, **constexprs, num_warps=config.num_warps, num_stages=config.num_stages)


def channel_stats(x, stats: BatchStatistics, momentum):
    """Batch mean and biased variance of NHWC ``x`` per channel; running statistics updated in place."""
    n, c, h, w = x.shape
    rows = n * h * w
    config, constexprs = _config("channel_stats", x.dtype, x.device, {"UPDATE_RUNNING": True})
    part_mean, part_m2 = partials(rows, constexprs["BLOCK_M"], c, x.device)
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c, constexprs["BLOCK_C"]))
    _launch(config, constexprs, grid, x, part_mean, part_m2, counters(x.device, grid[1]), *stats, rows, c, momentum)


def conv_forward(y, bn: Optional[BatchNormState], weight, bias, out, eps, *, skip=None, residual=None,
                 out_stats: Optional[BatchStatistics] = None, momentum=0.0):
    """out = conv(relu(bn(y))) + bias (+ skip conv of skip[0]) (+ residual); out_stats <- stats of out.

    With ``bn`` None the conv reads y as it is. ``skip`` is (x, weight, bias) of a 1x1 conv over
    the raw x, joined as concatenated K.
    ``out_stats`` receives the batch statistics of out, and its running statistics are updated.
    """
    n, c_in, h, w = y.shape
    c_out, ksize = weight.shape[0], weight.shape[-1]
    variant = dict(KSIZE=ksize, PROLOGUE=bn is not None, HAS_SKIP=skip is not None, HAS_RESIDUAL=residual is not None,
                   STATS=out_stats is not None, UPDATE_RUNNING=out_stats is not None)
    config, constexprs = _config("conv_forward", y.dtype, y.device, variant)
    bn = bn if bn is not None else (bias,) * 4
    rows = n * h * w
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c_out, constexprs["BLOCK_N"]))
    skip_x, skip_weight, skip_bias = skip if skip is not None else (y, weight, bias)
    if out_stats is not None:
        part_mean, part_m2 = partials(rows, constexprs["BLOCK_M"], c_out, y.device)
        stats_args = (part_mean, part_m2, counters(y.device, grid[1]), *out_stats)
    else:
        stats_args = (bias, bias, bias, bias, bias, bias, bias)
    _launch(config, constexprs, grid, y, *bn, weight, bias, skip_x, skip_weight, skip_bias,
            residual if residual is not None else out, out, *stats_args,
            n, h, w, c_in, c_out, skip_x.shape[1], eps, momentum)


def conv_dgrad(grad, weight, out, eps, *, grad_bn=None, y=None, y_bn: Optional[BatchNormState] = None,
               sums_out: Optional[BackwardSums] = None):
    """out = dL/da for a = the conv's input (dgrad), from dz = ``grad`` or, with ``grad_bn`` =
    (z, BatchNormState, BackwardSums), from the next BN's g. With ``y_bn`` the epilogue applies
    the ReLU mask of relu(bn(y)) and reduces BN's backward sums into ``sums_out``."""
    n, c_out, h, w = grad.shape
    c_in, ksize = weight.shape[1], weight.shape[-1]
    variant = dict(KSIZE=ksize, GRAD_BN=grad_bn is not None, EPILOGUE_BN=y_bn is not None)
    config, constexprs = _config("conv_dgrad", grad.dtype, grad.device, variant)
    rows = n * h * w
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c_in, constexprs["BLOCK_N"]))
    z, z_bn, z_sums = grad_bn if grad_bn is not None else (grad, None, None)
    z_args = (z, z_bn.mean, z_bn.var, z_bn.weight, *z_sums) if grad_bn is not None else (grad,) * 6
    if y_bn is not None:
        part_first, part_second = partials(rows, constexprs["BLOCK_M"], c_in, grad.device)
        epilogue = (y, *y_bn, out, part_first, part_second, counters(grad.device, grid[1]), *sums_out)
    else:
        epilogue = (out, out, out, out, out, out, out, out, out, out, out)
    _launch(config, constexprs, grid, grad, *z_args, weight, *epilogue, n, h, w, c_out, c_in, eps)


def conv_wgrad(grad, y, bn: Optional[BatchNormState], dweight, dbias, eps, *, grad_bn=None, skip_x=None,
               skip_dweight=None):
    """dweight = dL/dw and dbias = dL/dbias of z = conv(relu(bn(y))) + bias, with relu(bn(y))
    recomputed (y as it is with ``bn`` None); dz from ``grad`` or (``grad_bn``) the next BN's g.
    ``skip_x`` adds the skip conv's weight gradient (into ``skip_dweight``) as further programs
    of the same launch."""
    n, c_out, h, w = grad.shape
    c_in, ksize = dweight.shape[1], dweight.shape[-1]
    variant = dict(KSIZE=ksize, GRAD_BN=grad_bn is not None, PROLOGUE=bn is not None, HAS_SKIP=skip_x is not None)
    config, constexprs = _config("conv_wgrad", grad.dtype, grad.device, variant)
    bn = bn if bn is not None else (dbias,) * 4
    block_k = constexprs["BLOCK_K"]
    programs = ksize * ksize * triton.cdiv(c_in, block_k)
    if skip_x is not None:
        programs += triton.cdiv(skip_x.shape[1], block_k)
    grid = (triton.cdiv(c_out, constexprs["BLOCK_N"]), programs)
    z, z_bn, z_sums = grad_bn if grad_bn is not None else (grad, None, None)
    z_args = (z, z_bn.mean, z_bn.var, z_bn.weight, *z_sums) if grad_bn is not None else (grad,) * 6
    skip_x = skip_x if skip_x is not None else y
    _launch(config, constexprs, grid, grad, *z_args, y, *bn, skip_x, dweight, dbias,
            skip_dweight if skip_dweight is not None else dweight, n, h, w, c_out, c_in, skip_x.shape[1], eps)


def bn_backward_apply(grad, x, bn: BatchNormState, sums: BackwardSums, out, eps, extra=None):
    """out = dL/dx of BN from g = ``grad`` and the channel sums, plus ``extra`` (the skip's gradient)."""
    n, c, h, w = x.shape
    rows = n * h * w
    config, constexprs = _config("bn_backward_apply", x.dtype, x.device, {"HAS_EXTRA": extra is not None})
    grid = (triton.cdiv(rows, constexprs["BLOCK_M"]), triton.cdiv(c, constexprs["BLOCK_C"]))
    _launch(config, constexprs, grid, grad, x, bn.mean, bn.var, bn.weight, *sums,
            extra if extra is not None else out, out, rows, c, eps)
