"""Every shipped kernel configuration, as data: the launchers, the ahead-of-time build and the
benchmarks all read this one list.

A :class:`KernelConfig` names a ``@triton.jit`` kernel, the element type of its tensors, the GPU
architectures it is meant for, its block sizes and flags (constexprs) and its warps and pipeline
stages. Its ``signature`` (each runtime argument's Triton type, as ``triton.compiler.ASTSource``
wants it) is derived from the kernel's own parameter list: the types follow the parameter names
(:data:`PARAMETER_TYPES`), and a parameter that the configuration's flags leave unused
(:data:`CONDITIONAL_PARAMETERS`) is not in it: the launcher passes None there, which the JIT
makes a constexpr, instead of a placeholder tensor.
"""
import contextlib
import functools
import inspect
from dataclasses import dataclass, field

import torch
import triton.language as tl

from . import bn_stats, conv, heatmap, pool, upsample_add

TRITON_TYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}
ARCHS = (80, 90)  # GPU architectures compiled ahead of time
INTERPRETER = "interpreter"  # the pseudo-architecture of TRITON_INTERPRET=1 on CPU tensors

# Triton types of the kernels' runtime parameters, by name: a ``*_ptr`` points to the tensors'
# element type ("*{dtype}") and anything else is i32, except for these. "{acc}" is the type of
# statistics, BN parameters, partial sums and the reduction trees' partials (fp64 for fp64
# tensors, else fp32).
_ACCUMULATION_POINTERS = (
    "mean_ptr", "var_ptr", "bn_weight_ptr", "bn_bias_ptr", "bias_ptr", "skip_bias_ptr", "weight_ptr",
    "out_mean_ptr", "out_var_ptr", "running_mean_ptr", "running_var_ptr",
    "z_mean_ptr", "z_var_ptr", "z_weight_ptr", "z_bias_ptr", "z_sum_grad_ptr", "z_sum_grad_xhat_ptr",
    "y_mean_ptr", "y_var_ptr", "y_weight_ptr", "y_bias_ptr", "sum_grad_ptr", "sum_grad_xhat_ptr",
    "bn_dbias_ptr", "bn_dweight_ptr", "part_dw_ptr", "part_dbias_ptr", "partial_ptr", "coords_ptr", "peaks_ptr",
    "part_mean_ptr", "part_m2_ptr", "part_first_ptr", "part_second_ptr")
PARAMETER_TYPES = {
    **dict.fromkeys(_ACCUMULATION_POINTERS, "*{acc}"),
    **dict.fromkeys(("counter_ptr", "wgrad_counter_ptr"), "*i32"),
    "keypoints_ptr": "*fp32", "visible_ptr": "*u8", "index_ptr": "*i8",
    **dict.fromkeys(("eps", "momentum", "sigma"), "fp32"),
}


def _used_under(flags, *names):
    return dict.fromkeys(names, flags)


# The statistics of a pixel kernel's output for the BN that normalises it next (STATS).
_OUTPUT_STATISTICS = _used_under(("STATS",), "part_mean_ptr", "part_m2_ptr", "counter_ptr", "mean_ptr", "var_ptr",
                                 "running_mean_ptr", "running_var_ptr", "momentum")
_CONV_WEIGHT = ("w_ptr", "w_stride_o", "w_stride_c", "w_stride_h", "w_stride_w")
# Per kernel, the parameters its code touches only under some constexpr flags (any of them).
CONDITIONAL_PARAMETERS = {
    "conv_forward_kernel": {
        **_used_under(("PROLOGUE",), "mean_ptr", "var_ptr", "bn_weight_ptr", "bn_bias_ptr", "eps"),
        **_used_under(("HAS_SKIP",), "skip_x_ptr", "skip_w_ptr", "skip_bias_ptr", "C_skip"),
        **_used_under(("HAS_RESIDUAL",), "residual_ptr"),
        **_used_under(("ADD_UPSAMPLED",), "upsampled_ptr"),
        **_used_under(("STATS",), "part_mean_ptr", "part_m2_ptr", "counter_ptr", "out_mean_ptr", "out_var_ptr"),
        **_used_under(("UPDATE_RUNNING",), "running_mean_ptr", "running_var_ptr", "momentum"),
    },
    "conv_backward_kernel": {
        # WGRAD2 reads relu(bn(z)) of GRAD_BN's z (the launcher asks for both)
        **_used_under(("GRAD_BN", "WGRAD2"), "z_ptr", "z_mean_ptr", "z_var_ptr", "z_weight_ptr"),
        **_used_under(("GRAD_BN",), "z_sum_grad_ptr", "z_sum_grad_xhat_ptr"),
        **_used_under(("WGRAD", "EPILOGUE_BN", "APPLY_BN"), "y_ptr"),
        **_used_under(("PROLOGUE", "EPILOGUE_BN", "APPLY_BN"), "y_mean_ptr", "y_var_ptr", "y_weight_ptr",
                      "y_bias_ptr"),
        **_used_under(("DGRAD",), *_CONV_WEIGHT, "out_ptr", "C_dgrad"),
        **_used_under(("SECOND_GRAD",), "w2_ptr", "w2_stride_o", "w2_stride_c", "w2_stride_h", "w2_stride_w"),
        **_used_under(("SECOND_GRAD", "WGRAD2"), "grad2_ptr", "C_out2"),
        **_used_under(("COMPLETE_GRAD2",), "w3_ptr", "w3_stride_o", "w3_stride_c", "grad2_out_ptr"),
        **_used_under(("WGRAD2",), "dw2_ptr", "dw2_stride_o", "dw2_stride_c", "dw2_stride_h", "dw2_stride_w",
                      "dbias2_ptr", "z_bias_ptr"),
        **_used_under(("EPILOGUE_BN",), "part_first_ptr", "part_second_ptr", "counter_ptr", "bn_dbias_ptr",
                      "bn_dweight_ptr"),
        **_used_under(("EPILOGUE_BN", "APPLY_BN"), "sum_grad_ptr", "sum_grad_xhat_ptr"),
        **_used_under(("APPLY_BN",), "extra_ptr"),
        **_used_under(("HAS_THROUGH",), "through_ptr"),
        **_used_under(("WGRAD",), "dw_ptr", "dw_stride_o", "dw_stride_c", "dw_stride_h", "dw_stride_w", "dbias_ptr",
                      "part_dw_ptr", "part_dbias_ptr", "wgrad_counter_ptr", "wgrad_programs", "slice_rows", "C_wgrad"),
        **_used_under(("HAS_SKIP",), "skip_x_ptr", "skip_dw_ptr", "skip_dbias_ptr", "C_skip"),
        **_used_under(("GRAD_BN", "PROLOGUE", "EPILOGUE_BN", "APPLY_BN", "WGRAD2"), "eps"),
    },
    "channel_stats_kernel": _used_under(("UPDATE_RUNNING",), "running_mean_ptr", "running_var_ptr", "momentum"),
    "upsample_add_forward_kernel": _OUTPUT_STATISTICS,
    "max_pool2x2_forward_kernel": {**_OUTPUT_STATISTICS, **_used_under(("WRITE_INDEX",), "index_ptr")},
    "max_pool2x2_backward_kernel": _used_under(("HAS_THROUGH",), "through_ptr"),
}
# Per kernel, parameters that some flag takes away again: a SUMS_ONLY dgrad stores nothing.
UNUSED_UNDER = {"conv_backward_kernel": {"out_ptr": ("SUMS_ONLY",)}}


@dataclass(frozen=True)
class KernelConfig:
    name: str
    kernel: object
    dtype: torch.dtype
    constexprs: dict
    num_warps: int = 4
    num_stages: int = 1
    archs: tuple = ARCHS
    extra: dict = field(default_factory=dict)

    @property
    def label(self):
        blocks = ",".join(f"{k}={v}" for k, v in self.constexprs.items())
        return f"{self.name}[{TRITON_TYPE[self.dtype]};{blocks};w{self.num_warps}s{self.num_stages}]"

    def takes(self, parameter):
        """Whether this configuration's variant uses the kernel's runtime ``parameter``."""
        kernel = self.kernel.fn.__name__
        flags = CONDITIONAL_PARAMETERS.get(kernel, {}).get(parameter)
        removed = UNUSED_UNDER.get(kernel, {}).get(parameter, ())
        return (flags is None or any(self.constexprs[flag] for flag in flags)) and \
            not any(self.constexprs[flag] for flag in removed)

    @functools.cached_property
    def parameters(self):
        """The kernel's runtime parameters (constexprs excluded), in order."""
        parameters = inspect.signature(self.kernel.fn).parameters.values()
        return [param.name for param in parameters if param.annotation is not tl.constexpr]

    @functools.cached_property
    def signature(self):
        """{parameter this variant takes: its type}, ``{dtype}`` and ``{acc}`` still to fill in."""
        return {name: PARAMETER_TYPES.get(name, "*{dtype}" if name.endswith("_ptr") else "i32")
                for name in self.parameters if self.takes(name)}

    @functools.cached_property
    def absent(self):
        """The runtime parameters this variant does not take: None at launch, constexprs when compiled."""
        return [name for name in self.parameters if not self.takes(name)]

    def triton_signature(self):
        """The ASTSource signature: ``{dtype}`` is the tensors' element type, ``{acc}`` that of
        statistics, BN parameters and partials (fp64 for fp64 tensors, else fp32)."""
        element = TRITON_TYPE[self.dtype]
        acc = "fp64" if element == "fp64" else "fp32"
        return {arg: kind.format(dtype=element, acc=acc) for arg, kind in self.signature.items()}


REGISTRY = []
# (tile, warps) per architecture and STATS. REDUCE_GROUP: children per node of the statistics'
# reduction trees (as the convolutions' below). With STATS on GPUs, channel_stats' tile: 64-row
# tiles keep the trees' partials a quarter of 16-row ones, and the 16x64 tile spilled 8 bytes on
# sm_80 (C divisible by 16: 96 registers); 64x32 with 8 warps takes 104-112 and spills nothing.
_PIXEL_TILES = {
    ARCHS: {False: ({"BLOCK_P": 16, "BLOCK_C": 64, "REDUCE_GROUP": 8}, 4),
            True: ({"BLOCK_P": 64, "BLOCK_C": 32, "REDUCE_GROUP": 8}, 8)},
    (INTERPRETER,): {stats: ({"BLOCK_P": 128, "BLOCK_C": 64, "REDUCE_GROUP": 2}, 4) for stats in (False, True)},
}
# The max-pool's STATS forward without WRITE_INDEX spilled 8 bytes on sm_80 with 8 warps (bf16, fp32)
_POOL_WARPS = {(ARCHS, True, False): 4}
# On GPUs every pixel kernel variant also ships a fine tile, a quarter of the regular tile's pixels,
# registered after it (an alternative): fasthg.ops.launch.launch_pixel_tiles runs it when the
# regular tiles would not give each multiprocessor FINE_TILES_BELOW programs (at batch 16 the
# hourglass's levels from 8x8 down, and 16x16 for the STATS tiles), so a small tensor spreads over
# more SMs. With STATS on 8
# warps (4 spilled 8 bytes in the fp16 max-pool writing its index on sm_80).
_FINE_PIXEL_TILES = {ARCHS: {False: ({"BLOCK_P": 4, "BLOCK_C": 64, "REDUCE_GROUP": 8}, 4),
                             True: ({"BLOCK_P": 16, "BLOCK_C": 32, "REDUCE_GROUP": 8}, 8)}}


def _pixel_configs(archs, tiles, dtype, pool_warps):
    """The pixel kernels' configurations for one tile table ({STATS: (tile, warps)}), ``pool_warps``
    {(STATS, WRITE_INDEX): warps} overriding the max-pool forward's."""
    blocks = {k: v for k, v in tiles[False][0].items() if k.startswith("BLOCK_")}
    warps = tiles[False][1]
    for stats, (tile, stats_warps) in tiles.items():
        yield KernelConfig("upsample_add_forward", upsample_add.upsample_add_forward_kernel, dtype,
                           {"STATS": stats, **tile}, num_warps=stats_warps, archs=archs)
        # WRITE_INDEX: each window's argmax kept for the backward (fasthg/ops/max_pool.py); the
        # variant without it first, which a launch naming no WRITE_INDEX takes
        for index in (False, True):
            yield KernelConfig("max_pool2x2_forward", pool.max_pool2x2_forward_kernel, dtype,
                               {"STATS": stats, "WRITE_INDEX": index, **tile},
                               num_warps=pool_warps.get((stats, index), stats_warps), archs=archs)
    yield KernelConfig("upsample_add_backward", upsample_add.upsample_add_backward_kernel, dtype, blocks,
                       num_warps=warps, archs=archs)
    # HAS_THROUGH: the gradient of the input's pass-through added (fasthg/ops/max_pool.py)
    for through in (False, True):
        yield KernelConfig("max_pool2x2_backward", pool.max_pool2x2_backward_kernel, dtype,
                           {"HAS_THROUGH": through, **blocks}, num_warps=warps, archs=archs)


for _archs, _tiles in _PIXEL_TILES.items():
    for _dtype in TRITON_TYPE:
        REGISTRY += _pixel_configs(_archs, _tiles, _dtype,
                                   {k[1:]: v for k, v in _POOL_WARPS.items() if k[0] == _archs})
for _archs, _tiles in _FINE_PIXEL_TILES.items():
    for _dtype in TRITON_TYPE:
        REGISTRY += _pixel_configs(_archs, _tiles, _dtype, {})


# Every constexpr flag combination the Residual and the stack head launch, per kernel.
_CONV_VARIANTS = {
    # (KSIZE, PROLOGUE, HAS_SKIP, HAS_RESIDUAL, ADD_UPSAMPLED, STATS, UPDATE_RUNNING) of each launch
    "conv_forward": [dict(zip(("KSIZE", "PROLOGUE", "HAS_SKIP", "HAS_RESIDUAL", "ADD_UPSAMPLED", "STATS",
                               "UPDATE_RUNNING"), flags)) for flags in [
        (1, False, False, False, False, True, True),
        (1, False, False, False, False, False, False),
        (1, True, True, True, False, False, False),
        # with the statistics of their output for the BN that normalises it next: the stack head's
        # merge, a Residual's conv3 (skip conv or identity)
        (1, True, True, True, False, True, True),
        (1, True, True, False, False, True, True),
        (1, True, False, True, False, True, True),
        (1, True, False, False, False, True, True),
        (3, True, False, False, False, True, True),
        (1, True, True, False, False, False, False),
        (1, True, False, True, False, False, False),
        (1, True, False, False, False, False, False),
        (3, True, False, False, False, False, False),
        # an hourglass's up1 (identity skip), adding the upsampled inner branch, with the statistics
        # of the sum for the BN after the hourglass or without
        (1, True, False, True, True, True, True),
        (1, True, False, True, True, False, False),
    ]],
    # (KSIZE, GRAD_BN, WGRAD, PROLOGUE, HAS_SKIP, DGRAD, SECOND_GRAD, COMPLETE_GRAD2, EPILOGUE_BN,
    # SUMS_ONLY, APPLY_BN, HAS_THROUGH, WGRAD2) of each launch, in order: residual conv3 (+skip) |
    # dgrad3, skip dgrad, conv2, conv1 | bn1's sums, dx (with x's pass-through or not); head: the
    # merge's weight gradients | dgrad over [x_next | preds completed] (on the last stack dgrad over
    # preds alone), features conv with the heatmap conv's weight gradient.
    "conv_backward": [dict(zip(("KSIZE", "GRAD_BN", "WGRAD", "PROLOGUE", "HAS_SKIP", "DGRAD", "SECOND_GRAD",
                                "COMPLETE_GRAD2", "EPILOGUE_BN", "SUMS_ONLY", "APPLY_BN", "HAS_THROUGH", "WGRAD2"),
                               flags))
                      for flags in [
        (1, False, True, True, True, True, False, False, True, False, False, False, False),
        (1, False, True, True, False, True, False, False, True, False, False, False, False),
        (1, False, False, False, False, True, False, False, False, False, False, False, False),
        (3, True, True, True, False, True, False, False, True, False, False, False, False),
        (1, True, True, True, False, True, False, False, True, True, False, False, False),
        (1, True, False, False, False, True, False, False, False, False, True, False, False),
        (1, True, False, False, False, True, False, False, False, False, True, True, False),
        (1, False, True, True, True, True, True, True, True, False, False, False, False),
        (1, False, False, False, False, True, False, False, True, False, False, False, False),
        (1, True, True, False, False, True, False, False, False, False, False, False, True),
    ]],
}
_CONV_KERNELS = {"conv_forward": conv.conv_forward_kernel, "conv_backward": conv.conv_backward_kernel}
# Tiles per kernel, dtype and architecture, checked with the AOT report in every specialisation the
# JIT compiles (0 spills on sm_80 and sm_90). BLOCK_K is the K-step of a product (input channels of
# the forward, output channels of dgrad), BLOCK_J the width of a weight-gradient tile in im2col
# columns; REDUCE_GROUP the children per node of the reduction trees that programs share
# (statistics, BN's backward sums, split-K weight gradients: kernels/helpers.py).
# The forward has registers to spare: BLOCK_K = 32 (its weight tile a 16-byte vector per thread in
# 16-bit, kernels/conv.py) and three pipeline stages; in fp32 BLOCK_K = 16 (four fp32 make the
# 16-byte vector; at 32 the 1x1 IEEE launches with a residual spilled 8 bytes on sm_80).
# In the backward a weight-gradient slice runs slice_balance times the K-steps of the dgrad
# programs in its launch, and at least min_slice_steps row steps (twice a tree node's children;
# fasthg/ops/conv_launchers.py: wgrad_split). On GPUs, BLOCK_K = 32 pushes the 3x3 backward to
# 255 registers, and so does BLOCK_J = 64 in 16-bit; the backward runs one pipeline stage and
# BLOCK_J = 16 (two stages, or BLOCK_J = 32, spill in the 16-bit 3x3 GRAD_BN launch on sm_80, and
# two stages by 104-128 bytes in the fp32 IEEE ones); fp32 needs 8 warps (4 reach 255 in the
# joined dgrad|wgrad launch), but its dgrad-only launches run 4 (with 8, ptxas held the aligned
# 1x1 one with BN's sums to 64 registers on sm_80 and spilled 8 bytes; with 4 it takes 128).
# fp64 convolutions have no GPU tiles: with the split-K weight gradients and reduction trees every
# fp64 tile tried (2 and 4 warps, BLOCK_M 16-32, BLOCK_N 8-16, BLOCK_K = BLOCK_J = 8, groups of
# 2-4) left 8-16 byte spills at 64-96 registers in some variant, so fp64 on a GPU runs PyTorch's
# kernels (fasthg/dispatch.py), and a GPU's tiles emulated in fp64 are the interpreter's.
# The interpreter runs a program at a time in NumPy, so its tiles are as large as possible (fewer,
# bigger programs, and other edges than the GPU tiles test), and its REDUCE_GROUP of 2 and slices
# of one row tile give the small test shapes split weight gradients and trees of several levels.
_GPU_REDUCE_GROUP = 8
_GPU = {"BLOCK_M": 64, "BLOCK_N": 64, "REDUCE_GROUP": _GPU_REDUCE_GROUP}
_GPU_FORWARD = dict(_GPU, BLOCK_K=32, num_stages=3)
_GPU_BACKWARD = dict(_GPU, BLOCK_K=16, BLOCK_J=16, num_stages=1, slice_balance=2, min_slice_steps=16)
_INTERPRETED = {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64, "REDUCE_GROUP": 2, "num_warps": 4, "num_stages": 1}
_CONV_TILES = {
    "conv_forward": {
        (torch.float32, ARCHS): dict(_GPU_FORWARD, BLOCK_K=16, num_warps=8),
        (torch.float16, ARCHS): dict(_GPU_FORWARD, num_warps=4),
        (torch.bfloat16, ARCHS): dict(_GPU_FORWARD, num_warps=4),
        **{(dtype, (INTERPRETER,)): _INTERPRETED for dtype in TRITON_TYPE},
    },
    "conv_backward": {
        (torch.float32, ARCHS): dict(_GPU_BACKWARD, num_warps=8),
        (torch.float16, ARCHS): dict(_GPU_BACKWARD, num_warps=4),
        (torch.bfloat16, ARCHS): dict(_GPU_BACKWARD, num_warps=4),
        **{(dtype, (INTERPRETER,)): dict(_INTERPRETED, BLOCK_J=64, slice_balance=0, min_slice_steps=1)
           for dtype in TRITON_TYPE},
    },
}
# Variants that change their dtype's GPU tile: (kernel, dtype) -> [(flags they have, changes)], the
# input precision counting as a flag. With the reduction trees' partials in fp32 (fp64 before),
# ptxas held two aligned fp32 launches on sm_80 to an occupancy step and spilled 8-16 bytes: the
# 1x1 TF32 forward with a prologue and statistics and no skip conv (64 registers with three
# stages; two take 64 and spill nothing), and the 1x1 IEEE dgrad-only launch with BN's sums (96
# registers with 4 warps; 8 take 64 and spill nothing, where the TF32 one spills 8 bytes). The
# IEEE forward of an hourglass's up1 (residual, upsampled add and statistics in one epilogue)
# spilled 8-24 bytes on sm_80 or sm_90 with 64-row tiles at one to three stages, and with 4 warps
# or BLOCK_K 8; 32-row tiles at two stages spill nothing.
_VARIANT_TILES = {
    ("conv_backward", torch.float32): [({"WGRAD": False}, {"num_warps": 4}),
                                       ({"WGRAD": False, "SECOND_GRAD": False, "EPILOGUE_BN": True,
                                         "INPUT_PRECISION": "ieee"}, {"num_warps": 8})],
    ("conv_forward", torch.float32): [({"KSIZE": 1, "PROLOGUE": True, "HAS_SKIP": False, "STATS": True,
                                        "INPUT_PRECISION": "tf32"}, {"num_stages": 2}),
                                       ({"ADD_UPSAMPLED": True, "INPUT_PRECISION": "ieee"}, {"BLOCK_M": 32, "num_stages": 2})],
}
_LAUNCH_SETTINGS = ("num_warps", "num_stages")
_EXTRA = ("slice_balance", "min_slice_steps")  # read by the launcher, not the kernel
# The dot products' input precision per dtype (launch.dot_flags): fp32 runs TF32 or IEEE as
# torch.backends.cudnn.allow_tf32 says, so both are shipped (and listed for the interpreter, which
# ignores it, so a launcher may ask for either); fp16/bf16 ignore it, fp64 is always IEEE.
_PRECISIONS = {torch.float64: ("ieee",), torch.float32: ("tf32", "ieee"), torch.float16: ("tf32",),
               torch.bfloat16: ("tf32",)}
# On a GPU, launches of a variant with several shipped tiles are autotuned (fasthg/ops/launch.py):
# the 16-bit 3x3 forward, most of a training step's FLOPs, also ships a 128-row tile with 8 warps
# (with 4 its unspecialised fallback spills 184-296 bytes; fp32's is not shipped, unchecked). The
# first tile registered is the default (lookup's answer: what runs off a GPU and what the
# benchmarks model). Only this one: CI compiles every tile in every specialisation for two GPUs.
_AUTOTUNED = {"conv_forward": ({"KSIZE": 3}, {"BLOCK_M": 128, "num_warps": 8}, (torch.float16, torch.bfloat16))}


def _conv_configs(name, tile_changes=None, only=None, dtypes=tuple(TRITON_TYPE), archs_only=None):
    """The configurations of conv kernel ``name``: every tile of its table for ``dtypes`` (and
    ``archs_only``), with ``tile_changes``, every input precision of the dtype, every variant
    (those agreeing with ``only``)."""
    for (dtype, archs), tiles in _CONV_TILES[name].items():
        if dtype not in dtypes or archs_only not in (None, archs):
            continue
        for precision in _PRECISIONS[dtype]:
            for flags in _CONV_VARIANTS[name]:
                if all(flags[k] == v for k, v in (only or {}).items()):
                    variant = {**flags, "INPUT_PRECISION": precision}
                    variant_changes = [changes for have, changes in _VARIANT_TILES.get((name, dtype), ())
                                       if archs == ARCHS and all(variant[k] == v for k, v in have.items())]
                    tile = {**tiles, **(tile_changes or {}), **{k: v for c in variant_changes for k, v in c.items()}}
                    blocks = {k: v for k, v in tile.items() if k not in _LAUNCH_SETTINGS + _EXTRA}
                    yield KernelConfig(
                        name, _CONV_KERNELS[name], dtype,
                        {**flags, "INPUT_PRECISION": precision, "UPCAST": False, **blocks},
                        num_warps=tile["num_warps"], num_stages=tile["num_stages"], archs=archs,
                        extra={k: tile[k] for k in _EXTRA if k in tile})


for _name in _CONV_KERNELS:
    REGISTRY += _conv_configs(_name)
for _name, (_only, _changes, _dtypes) in _AUTOTUNED.items():
    REGISTRY += _conv_configs(_name, _changes, _only, _dtypes, ARCHS)
_STATS_GROUP = {ARCHS: _GPU_REDUCE_GROUP, (INTERPRETER,): 2}
_ELEMENTWISE_TILES = {ARCHS: (64, 32, 8), (INTERPRETER,): (256, 64, 4)}  # rows, channels, warps
for _archs, (_rows, _channels, _warps) in _ELEMENTWISE_TILES.items():
    for _dtype in TRITON_TYPE:
        _blocks = {"BLOCK_M": _rows, "BLOCK_C": _channels}
        REGISTRY += [
            KernelConfig("channel_stats", bn_stats.channel_stats_kernel, _dtype,
                         {"UPDATE_RUNNING": True, **_blocks, "REDUCE_GROUP": _STATS_GROUP[_archs]},
                         num_warps=_warps, archs=_archs),
        ]


# Heatmaps: one program per joint map, looping over pixel blocks of BLOCK_HW (a 64x64 map is 4
# blocks on a GPU, one in the interpreter). Keypoints are float32, visibility bytes; STYLE is
# the target style (princeton, bearpaw, mmpose, unbiased) or the decoding convention (the first three).
for _archs, _block in {ARCHS: 1024, (INTERPRETER,): 4096}.items():
    for _style, _style_name in enumerate(heatmap.STYLES):
        _blocks = {"STYLE": _style, "BLOCK_HW": _block}
        REGISTRY.append(KernelConfig("render_heatmaps", heatmap.render_heatmaps_kernel, torch.float32, _blocks,
                                     archs=_archs))
        for _dtype in TRITON_TYPE:
            REGISTRY.append(KernelConfig("heatmap_loss", heatmap.heatmap_loss_kernel, _dtype, _blocks, archs=_archs))
            if _style_name != "unbiased":  # decoding has three conventions
                REGISTRY.append(KernelConfig("decode_heatmaps", heatmap.decode_heatmaps_kernel, _dtype, _blocks,
                                             archs=_archs))


_emulated = [INTERPRETER]


@contextlib.contextmanager
def emulating(arch):
    """Within the block, kernels on CPU tensors take ``arch``'s configurations (tests run the GPU tiles)."""
    _emulated.append(arch)
    try:
        yield
    finally:
        _emulated.pop()


_cuda_archs = {}  # CUDA device index -> registry architecture, read once per device


def current_arch(device):
    """The registry architecture for a device: sm_80 or sm_90 on CUDA, else the interpreter's."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index not in _cuda_archs:
            major, _ = torch.cuda.get_device_capability(index)
            _cuda_archs[index] = 90 if major >= 9 else 80
        return _cuda_archs[index]
    return _emulated[-1]


def _index(configs):
    """{(name, dtype, arch): that kernel's configurations in registry order}."""
    index = {}
    for config in configs:
        for arch in config.archs:
            index.setdefault((config.name, config.dtype, arch), []).append(config)
    return index


_BY_KERNEL = _index(REGISTRY)
_found = {}  # (name, dtype, arch, frozenset of the flags) -> the configuration lookup returned


def _variant_key(config):
    """What configurations that differ only in their tile (BLOCK_* constexprs, warps, stages) share."""
    return (config.name, config.dtype, config.archs,
            tuple((k, v) for k, v in config.constexprs.items() if not k.startswith("BLOCK_")))


_TILES_OF_VARIANT = {}
for _config in REGISTRY:
    _TILES_OF_VARIANT.setdefault(_variant_key(_config), []).append(_config)
# Each pixel kernel configuration's finest sibling tile (finer_tile), found once: a small pixel
# launch asks on every launch.
_FINEST_TILE = {id(tile): min(tiles, key=lambda sibling: sibling.constexprs["BLOCK_P"])
                for tiles in _TILES_OF_VARIANT.values() for tile in tiles if "BLOCK_P" in tile.constexprs}


def alternatives(config):
    """The other shipped tiles of ``config``'s kernel variant, dtype and architectures: what an
    autotuned launch (the 3x3 forward's) chooses among besides ``config``, or a pixel kernel's fine tile."""
    return tuple(other for other in _TILES_OF_VARIANT[_variant_key(config)] if other is not config)


def is_alternative(config):
    """Whether ``config`` is an alternative: a tile registered after its variant's default."""
    return _TILES_OF_VARIANT[_variant_key(config)][0] is not config


def finer_tile(config):
    """The fine tile shipped beside a pixel kernel's ``config`` (fewer pixels per program), or
    ``config`` itself where there is none (the interpreter's, or ``config`` is the fine tile)."""
    return _FINEST_TILE.get(id(config), config)


def lookup(name, dtype, device, **flags):
    """The shipped configuration of kernel ``name`` for ``dtype`` on ``device``'s architecture.

    ``flags`` select among a kernel's variants (constexpr flags such as KSIZE, or INPUT_PRECISION
    for fp32 convolutions); a configuration matches when it agrees on every flag it defines, and the
    first match in registry order wins. A GPU architecture emulated on CPU tensors (:func:`emulating`)
    that has no configuration of a kernel in a dtype (fp64 convolutions) takes the interpreter's. Launchers call this on every launch, so the answer is cached
    per (name, dtype, architecture, flags): after the first call it costs one dict lookup.
    """
    arch = current_arch(device)
    key = (name, dtype, arch, frozenset(flags.items()))
    config = _found.get(key)
    if config is None:
        candidates = _BY_KERNEL.get((name, dtype, arch)) or _BY_KERNEL.get((name, dtype, INTERPRETER), ()) \
            if device.type != "cuda" else _BY_KERNEL.get((name, dtype, arch), ())
        config = next((c for c in candidates if all(c.constexprs.get(k, v) == v for k, v in flags.items())), None)
        if config is None:
            raise KeyError(f"no shipped configuration of {name} for {dtype} on {arch} with {flags}")
        _found[key] = config
    return config
