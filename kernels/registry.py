"""Every shipped kernel configuration, as data: the launchers, the ahead-of-time build and the
benchmarks all read this one list.

A :class:`KernelConfig` names a ``@triton.jit`` kernel, the element type of its tensors, the GPU
architectures it is meant for, its block sizes (constexprs) and its warps and pipeline stages.
``signature`` maps each runtime argument to a Triton type, with ``{dtype}`` standing for the
element type (``"*{dtype}"`` is a pointer to it), as ``triton.compiler.ASTSource`` wants it.
"""
import contextlib
from dataclasses import dataclass, field

import torch

from . import bn_stats, conv, heatmap, pool, upsample_add

TRITON_TYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}
ARCHS = (80, 90)  # GPU architectures compiled ahead of time
INTERPRETER = "interpreter"  # the pseudo-architecture of TRITON_INTERPRET=1 on CPU tensors


@dataclass(frozen=True)
class KernelConfig:
    name: str
    kernel: object
    dtype: torch.dtype
    signature: dict
    constexprs: dict
    num_warps: int = 4
    num_stages: int = 1
    archs: tuple = ARCHS
    extra: dict = field(default_factory=dict)

    @property
    def label(self):
        blocks = ",".join(f"{k}={v}" for k, v in self.constexprs.items())
        return f"{self.name}[{TRITON_TYPE[self.dtype]};{blocks};w{self.num_warps}s{self.num_stages}]"

    def triton_signature(self):
        """The ASTSource signature: ``{dtype}`` is the tensors' element type, ``{acc}`` that of
        statistics and BN parameters (fp64 for fp64 tensors, else fp32)."""
        element = TRITON_TYPE[self.dtype]
        acc = "fp64" if element == "fp64" else "fp32"
        return {arg: kind.format(dtype=element, acc=acc) for arg, kind in self.signature.items()}


# The forward kernels of upsample-add and max-pool reduce their output's statistics (STATS) for the BN next.
_STATISTICS_OUT_SIGNATURE = {
    "part_mean_ptr": "*fp64", "part_m2_ptr": "*fp64", "counter_ptr": "*i32",
    **{name: "*{acc}" for name in ("mean_ptr", "var_ptr", "running_mean_ptr", "running_var_ptr")}, "momentum": "fp32",
}
_UPSAMPLE_FORWARD_SIGNATURE = {"low_ptr": "*{dtype}", "skip_ptr": "*{dtype}", "out_ptr": "*{dtype}",
                               "N": "i32", "C": "i32", "H": "i32", "W": "i32", **_STATISTICS_OUT_SIGNATURE}
_UPSAMPLE_BACKWARD_SIGNATURE = {"grad_ptr": "*{dtype}", "grad_low_ptr": "*{dtype}",
                                "N": "i32", "C": "i32", "h": "i32", "w": "i32"}

_POOL_FORWARD_SIGNATURE = {"x_ptr": "*{dtype}", "out_ptr": "*{dtype}", "N": "i32", "C": "i32", "H": "i32", "W": "i32",
                           **_STATISTICS_OUT_SIGNATURE}
_POOL_BACKWARD_SIGNATURE = {"grad_ptr": "*{dtype}", "x_ptr": "*{dtype}", "grad_x_ptr": "*{dtype}",
                            "N": "i32", "C": "i32", "H": "i32", "W": "i32"}

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
for _archs, _tiles in _PIXEL_TILES.items():
    _blocks = {k: v for k, v in _tiles[False][0].items() if k.startswith("BLOCK_")}
    for _dtype in TRITON_TYPE:
        for _stats, (_tile, _warps) in _tiles.items():
            REGISTRY += [
                KernelConfig("upsample_add_forward", upsample_add.upsample_add_forward_kernel, _dtype,
                             _UPSAMPLE_FORWARD_SIGNATURE, {"STATS": _stats, **_tile}, num_warps=_warps, archs=_archs),
                KernelConfig("max_pool2x2_forward", pool.max_pool2x2_forward_kernel, _dtype,
                             _POOL_FORWARD_SIGNATURE, {"STATS": _stats, **_tile}, num_warps=_warps, archs=_archs),
            ]
        REGISTRY += [
            KernelConfig("upsample_add_backward", upsample_add.upsample_add_backward_kernel, _dtype,
                         _UPSAMPLE_BACKWARD_SIGNATURE, _blocks, archs=_archs),
            KernelConfig("max_pool2x2_backward", pool.max_pool2x2_backward_kernel, _dtype,
                         _POOL_BACKWARD_SIGNATURE, _blocks, archs=_archs),
        ]


def _pointers(kind, *names):
    return {name: kind for name in names}


_CONV_FORWARD_SIGNATURE = {
    "y_ptr": "*{dtype}", **_pointers("*{acc}", "mean_ptr", "var_ptr", "bn_weight_ptr", "bn_bias_ptr"),
    "w_ptr": "*{dtype}", "bias_ptr": "*{acc}",
    "skip_x_ptr": "*{dtype}", "skip_w_ptr": "*{dtype}", "skip_bias_ptr": "*{acc}",
    "residual_ptr": "*{dtype}", "out_ptr": "*{dtype}",
    "part_mean_ptr": "*fp64", "part_m2_ptr": "*fp64", "counter_ptr": "*i32",
    **_pointers("*{acc}", "out_mean_ptr", "out_var_ptr", "running_mean_ptr", "running_var_ptr"),
    **_pointers("i32", "N", "H", "W", "C_in", "C_out", "C_skip"), "eps": "fp32", "momentum": "fp32",
}
_GRAD_BN = {"grad_ptr": "*{dtype}", "z_ptr": "*{dtype}",
            **_pointers("*{acc}", "z_mean_ptr", "z_var_ptr", "z_weight_ptr", "z_sum_grad_ptr", "z_sum_grad_xhat_ptr")}
_CONV_BACKWARD_SIGNATURE = {
    **_GRAD_BN,
    "y_ptr": "*{dtype}", **_pointers("*{acc}", "y_mean_ptr", "y_var_ptr", "y_weight_ptr", "y_bias_ptr"),
    "w_ptr": "*{dtype}", "out_ptr": "*{dtype}", "part_first_ptr": "*fp64", "part_second_ptr": "*fp64",
    "counter_ptr": "*i32", "sum_grad_ptr": "*{acc}", "sum_grad_xhat_ptr": "*{acc}",
    "bn_dbias_ptr": "*{acc}", "bn_dweight_ptr": "*{acc}",
    "skip_x_ptr": "*{dtype}", "dw_ptr": "*{dtype}", "dbias_ptr": "*{dtype}",
    "skip_dw_ptr": "*{dtype}", "skip_dbias_ptr": "*{dtype}",
    "part_dw_ptr": "*{acc}", "part_dbias_ptr": "*{acc}", "wgrad_counter_ptr": "*i32", "slice_rows": "i32",
    **_pointers("i32", "N", "H", "W", "C_out", "C_dgrad", "C_wgrad", "C_skip"), "eps": "fp32",
}
_CHANNEL_STATS_SIGNATURE = {
    "x_ptr": "*{dtype}", "part_mean_ptr": "*fp64", "part_m2_ptr": "*fp64", "counter_ptr": "*i32",
    **_pointers("*{acc}", "mean_ptr", "var_ptr", "running_mean_ptr", "running_var_ptr"),
    "M": "i32", "C": "i32", "momentum": "fp32",
}
_BN_BACKWARD_APPLY_SIGNATURE = {
    "grad_ptr": "*{dtype}", "x_ptr": "*{dtype}",
    **_pointers("*{acc}", "mean_ptr", "var_ptr", "weight_ptr", "sum_grad_ptr", "sum_grad_xhat_ptr"),
    "extra_ptr": "*{dtype}", "out_ptr": "*{dtype}", "M": "i32", "C": "i32", "eps": "fp32",
}

# Every constexpr flag combination the Residual and the stack head launch, per kernel.
_CONV_VARIANTS = {
    "conv_forward": [
        dict(KSIZE=1, PROLOGUE=False, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=True, UPDATE_RUNNING=True),
        dict(KSIZE=1, PROLOGUE=False, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=False, UPDATE_RUNNING=False),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=True, HAS_RESIDUAL=True, STATS=False, UPDATE_RUNNING=False),
        # with the statistics of their output for the BN that normalises it next: the stack head's
        # merge, a Residual's conv3 (skip conv or identity)
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=True, HAS_RESIDUAL=True, STATS=True, UPDATE_RUNNING=True),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=True, HAS_RESIDUAL=False, STATS=True, UPDATE_RUNNING=True),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=True, STATS=True, UPDATE_RUNNING=True),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=True, UPDATE_RUNNING=True),
        dict(KSIZE=3, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=True, UPDATE_RUNNING=True),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=True, HAS_RESIDUAL=False, STATS=False, UPDATE_RUNNING=False),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=True, STATS=False, UPDATE_RUNNING=False),
        dict(KSIZE=1, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=False, UPDATE_RUNNING=False),
        dict(KSIZE=3, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=False, UPDATE_RUNNING=False),
    ],
    # (KSIZE, GRAD_BN, WGRAD, PROLOGUE, HAS_SKIP, DGRAD, EPILOGUE_BN) of each launch, in order:
    # residual conv3 (+skip) | dgrad3, skip dgrad, conv2, conv1; head merge | dgrad_mp, conv_o
    # wgrad, dgrad over [x_next | preds], features conv.
    "conv_backward": [dict(zip(("KSIZE", "GRAD_BN", "WGRAD", "PROLOGUE", "HAS_SKIP", "DGRAD", "EPILOGUE_BN"), flags)) for flags in [
        (1, False, True, True, True, True, True),
        (1, False, True, True, False, True, True),
        (1, False, False, False, False, True, False),
        (3, True, True, True, False, True, True),
        (1, True, True, True, False, True, True),
        (1, False, True, True, True, True, False),
        (1, False, True, True, False, False, False),
        (1, False, False, False, False, True, True),
        (1, True, True, False, False, True, False),
    ]],
}
_CONV_KERNELS = {
    "conv_forward": (conv.conv_forward_kernel, _CONV_FORWARD_SIGNATURE),
    "conv_backward": (conv.conv_backward_kernel, _CONV_BACKWARD_SIGNATURE),
}
# Tiles per dtype and architecture, checked with the AOT report in every specialisation the JIT
# compiles (0 spills on sm_80 and sm_90). BLOCK_J is the width of a weight-gradient tile in im2col
# columns; REDUCE_GROUP the children per node of the reduction trees that programs share
# (statistics, BN's backward sums, split-K weight gradients: kernels/helpers.py). A weight-gradient
# slice runs SLICE_BALANCE times the K-steps of the dgrad programs in its launch, and at least
# MIN_SLICE_STEPS row steps (twice a tree node's children; fasthg/ops/residual_kernels.py:
# wgrad_split). On GPUs, BLOCK_K = 32 pushes the 3x3 backward to 255 registers, and so does
# BLOCK_J = 64 in 16-bit; the backward runs one pipeline stage and BLOCK_J = 16 (two stages, or
# BLOCK_J = 32, spill in the 16-bit 3x3 GRAD_BN launch on sm_80, and two stages by 104-128 bytes
# in the fp32 IEEE ones); fp32 needs 8 warps (4 reach 255 in the joined dgrad|wgrad launch).
# fp64 convolutions have no GPU tiles: with the split-K weight gradients and reduction trees every
# fp64 tile tried (2 and 4 warps, BLOCK_M 16-32, BLOCK_N 8-16, BLOCK_K = BLOCK_J = 8, groups of
# 2-4) left 8-16 byte spills at 64-96 registers in some variant, so fp64 on a GPU runs PyTorch's
# kernels (fasthg/dispatch.py), and a GPU's tiles emulated in fp64 are the interpreter's.
# The interpreter runs a program at a time in NumPy, so its tiles are as large as possible (fewer,
# bigger programs, and other edges than the GPU tiles test), and its REDUCE_GROUP of 2 and slices
# of one row tile give the small test shapes split weight gradients and trees of several levels.
_GPU_REDUCE = {"REDUCE_GROUP": 8, "SLICE_BALANCE": 2, "MIN_SLICE_STEPS": 16}
_CONV_TILES = {
    (torch.float32, ARCHS): dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, BLOCK_J=16, num_warps=8, stages=(2, 1),
                                 **_GPU_REDUCE),
    (torch.float16, ARCHS): dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, BLOCK_J=16, num_warps=4, stages=(2, 1),
                                 **_GPU_REDUCE),
    (torch.bfloat16, ARCHS): dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, BLOCK_J=16, num_warps=4, stages=(2, 1),
                                  **_GPU_REDUCE),
    **{(dtype, (INTERPRETER,)): dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, BLOCK_J=64, num_warps=4, stages=(1, 1),
                                     REDUCE_GROUP=2, SLICE_BALANCE=0, MIN_SLICE_STEPS=1) for dtype in TRITON_TYPE},
}
# (constexprs taken from the tile, index of its pipeline stages) per conv kernel
_CONV_BLOCKS = {"conv_forward": (("BLOCK_M", "BLOCK_N", "BLOCK_K", "REDUCE_GROUP"), 0),
                "conv_backward": (("BLOCK_M", "BLOCK_N", "BLOCK_K", "BLOCK_J", "REDUCE_GROUP"), 1)}
# The dot products' input precision per dtype (launch.dot_flags): fp32 runs TF32 or IEEE as
# torch.backends.cudnn.allow_tf32 says, so both are shipped (and listed for the interpreter, which
# ignores it, so a launcher may ask for either); fp16/bf16 ignore it, fp64 is always IEEE.
_PRECISIONS = {torch.float64: ("ieee",), torch.float32: ("tf32", "ieee"), torch.float16: ("tf32",),
               torch.bfloat16: ("tf32",)}
for (_dtype, _archs), _tiles in _CONV_TILES.items():
    for _precision in _PRECISIONS[_dtype]:
        for _name, (_kernel, _signature) in _CONV_KERNELS.items():
            _blocks, _stage = _CONV_BLOCKS[_name]
            for _flags in _CONV_VARIANTS[_name]:
                REGISTRY.append(KernelConfig(
                    _name, _kernel, _dtype, _signature,
                    {**_flags, "INPUT_PRECISION": _precision, "UPCAST": False, **{b: _tiles[b] for b in _blocks}},
                    num_warps=_tiles["num_warps"], num_stages=_tiles["stages"][_stage], archs=_archs,
                    extra={"slice_balance": _tiles["SLICE_BALANCE"], "min_slice_steps": _tiles["MIN_SLICE_STEPS"]}))
_ELEMENTWISE_TILES = {ARCHS: (64, 32, 8), (INTERPRETER,): (256, 64, 4)}  # rows, channels, warps
_STATS_GROUP = {ARCHS: _GPU_REDUCE["REDUCE_GROUP"], (INTERPRETER,): 2}
for _archs, (_rows, _channels, _warps) in _ELEMENTWISE_TILES.items():
    for _dtype in TRITON_TYPE:
        _blocks = {"BLOCK_M": _rows, "BLOCK_C": _channels}
        REGISTRY += [
            KernelConfig("channel_stats", bn_stats.channel_stats_kernel, _dtype, _CHANNEL_STATS_SIGNATURE,
                         {"UPDATE_RUNNING": True, **_blocks, "REDUCE_GROUP": _STATS_GROUP[_archs]},
                         num_warps=_warps, archs=_archs),
            KernelConfig("bn_backward_apply", bn_stats.bn_backward_apply_kernel, _dtype,
                         _BN_BACKWARD_APPLY_SIGNATURE, {"HAS_EXTRA": True, **_blocks}, num_warps=_warps, archs=_archs),
        ]


# Heatmaps: one program per joint map, looping over pixel blocks of BLOCK_HW (a 64x64 map is 4
# blocks on a GPU, one in the interpreter). Keypoints are float32, visibility bytes; STYLE is
# the target style (princeton, bearpaw, mmpose, unbiased) or the decoding convention (the first three).
_RENDER_SIGNATURE = {"keypoints_ptr": "*fp32", "visible_ptr": "*u8", "out_ptr": "*fp32",
                     **_pointers("i32", "has_visible", "height", "width"), "sigma": "fp32"}
_HEATMAP_LOSS_SIGNATURE = {
    "preds_ptr": "*{dtype}", "keypoints_ptr": "*fp32", "visible_ptr": "*u8", "grad_ptr": "*{dtype}",
    "partial_ptr": "*{acc}", **_pointers("i32", "has_visible", "store_grad", "weighted", "stacks", "joints",
                                         "height", "width"), "sigma": "fp32",
}
_DECODE_SIGNATURE = {"heatmaps_ptr": "*{dtype}", "coords_ptr": "*{acc}", "peaks_ptr": "*{acc}",
                     "height": "i32", "width": "i32"}
for _archs, _block in {ARCHS: 1024, (INTERPRETER,): 4096}.items():
    for _style, _style_name in enumerate(heatmap.STYLES):
        _blocks = {"STYLE": _style, "BLOCK_HW": _block}
        REGISTRY.append(KernelConfig("render_heatmaps", heatmap.render_heatmaps_kernel, torch.float32,
                                     _RENDER_SIGNATURE, _blocks, archs=_archs))
        for _dtype in TRITON_TYPE:
            REGISTRY.append(KernelConfig("heatmap_loss", heatmap.heatmap_loss_kernel, _dtype,
                                         _HEATMAP_LOSS_SIGNATURE, _blocks, archs=_archs))
            if _style_name != "unbiased":  # decoding has three conventions
                REGISTRY.append(KernelConfig("decode_heatmaps", heatmap.decode_heatmaps_kernel, _dtype,
                                             _DECODE_SIGNATURE, _blocks, archs=_archs))


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
