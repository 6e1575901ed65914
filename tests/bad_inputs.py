"""The bad-input table: every public function and module with its wrong inputs and the error each gets.

One list, two users: tests/test_bad_input.py runs every row, and ``python tests/bad_inputs.py``
renders docs/bad_input.md from it (a test checks the file is up to date). A row's ``call`` builds
its arguments and makes the call; the error must be ``error``, its message must start with
``argument: `` and contain ``expect`` (what was expected), and no kernel may have been launched.
"""
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy
import torch

import fasthg
import fasthg.metrics

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad_input.md"


@dataclass(frozen=True)
class Row:
    function: str       # as a user calls it
    argument: str       # the argument the message names
    wrong: str          # what kind of mistake: rank, shape, dtype, device, layout, value, type, option
    given: str          # what was passed
    error: type
    expect: str         # what the message says is expected (a substring of it)
    call: Callable[[], object]


def t(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(shape, device=device).to(dtype) if dtype.is_floating_point else torch.ones(shape, dtype=dtype)


def sparse(*shape):
    return torch.randn(shape).to_sparse()


def meta(*shape):
    return torch.empty(shape, device="meta")


class ModuleCall:
    """A call of a module built by ``make``: the test also checks the rejected call left its state alone."""

    def __init__(self, make, *args):
        self.make, self.args = make, args

    def __call__(self):
        return self.make()(*self.args)


module_call = ModuleCall


UPSAMPLE = "fasthg.ops.upsample_add(low, skip)"
POOL = "fasthg.ops.max_pool2x2(x)"
RESIDUAL = "fasthg.Residual(5, 8)(x)"
UPSAMPLED = "fasthg.Residual(4, 4)(x, upsampled=low)"
HOURGLASS = "fasthg.Hourglass(2, 4)(x)"
POSENET = "fasthg.PoseNet(1, 4, 2)(imgs)"
STACKED = "fasthg.StackedHourglass(1, 4, 2)(x)"
RENDER = "fasthg.ops.render_heatmaps(keypoints, visible, size, sigma, style)"
LOSS = "fasthg.ops.heatmap_loss(preds, keypoints, visible, sigma, style, weighted)"
DECODE = "fasthg.ops.decode_heatmaps(heatmaps, style)"
PCKH = "fasthg.metrics.pckh(pred, gt, annotated, normalize, threshold, convention)"
up, pool = fasthg.ops.upsample_add, fasthg.ops.max_pool2x2
render_heatmaps, heatmap_loss, decode_heatmaps = fasthg.ops.render_heatmaps, fasthg.ops.heatmap_loss, fasthg.ops.decode_heatmaps


def pckh(pred=None, gt=None, annotated=None, normalize=None, **options):
    """fasthg.metrics.pckh of 4 people with the given arguments, good ones for the rest."""
    return fasthg.metrics.pckh(t(4, 16, 2) if pred is None else pred, t(4, 16, 2) if gt is None else gt,
                               t(4, 16, dtype=torch.bool) if annotated is None else annotated,
                               torch.ones(4) if normalize is None else normalize, **options)


ROWS = [
    Row(UPSAMPLE, "low", "type", "a list", TypeError, "a torch.Tensor, got list", lambda: up([1.0], t(2, 3, 8, 8))),
    Row(UPSAMPLE, "low", "rank", "3-D (2, 3, 4)", ValueError, "a 4-D tensor (N, C, h, w), got shape (2, 3, 4)",
        lambda: up(t(2, 3, 4), t(2, 3, 8, 8))),
    Row(UPSAMPLE, "skip", "rank", "5-D", ValueError, "a 4-D tensor (N, C, 2h, 2w)", lambda: up(t(2, 3, 4, 4), t(1, 2, 3, 8, 8))),
    Row(UPSAMPLE, "skip", "shape", "(2, 3, 8, 9) for low (2, 3, 4, 4)", ValueError, "shape (N, C, 2h, 2w) = (2, 3, 8, 8)",
        lambda: up(t(2, 3, 4, 4), t(2, 3, 8, 9))),
    Row(UPSAMPLE, "skip", "shape", "4 channels, low has 3", ValueError, "shape (N, C, 2h, 2w) = (2, 3, 8, 8)",
        lambda: up(t(2, 3, 4, 4), t(2, 4, 8, 8))),
    Row(UPSAMPLE, "low", "dtype", "int64", TypeError, "dtype in (float16, bfloat16, float32, float64), got torch.int64",
        lambda: up(t(2, 3, 4, 4, dtype=torch.int64), t(2, 3, 8, 8, dtype=torch.int64))),
    Row(UPSAMPLE, "low", "dtype", "float32 with a float64 skip", TypeError, "dtype torch.float64 like skip",
        lambda: up(t(2, 3, 4, 4), t(2, 3, 8, 8, dtype=torch.float64))),
    Row(UPSAMPLE, "low", "device", "meta with a cpu skip", ValueError, "a tensor on cpu like skip, got meta",
        lambda: up(meta(2, 3, 4, 4), t(2, 3, 8, 8))),
    Row(UPSAMPLE, "low", "layout", "sparse COO", TypeError, "a dense (strided) tensor, got layout torch.sparse_coo",
        lambda: up(sparse(1, 3, 2, 2), t(1, 3, 4, 4))),
    Row(UPSAMPLE, "low", "value", "an empty batch (0, 3, 2, 2)", ValueError, "a non-empty tensor, got shape (0, 3, 2, 2)",
        lambda: up(t(0, 3, 2, 2), t(0, 3, 4, 4))),
    Row(UPSAMPLE, "skip", "value", "2^31 elements or more", ValueError, "fewer than 2^31 elements",
        lambda: up(meta(2**14, 64, 32, 32), meta(2**14, 64, 64, 64))),

    Row(POOL, "x", "type", "a numpy array", TypeError, "a torch.Tensor, got ndarray", lambda: pool(t(1, 3, 4, 4).numpy())),
    Row(POOL, "x", "rank", "5-D", ValueError, "a 4-D tensor (N, C, H, W), got shape (1, 1, 3, 4, 4)", lambda: pool(t(1, 1, 3, 4, 4))),
    Row(POOL, "x", "shape", "height 1", ValueError, "height and width >= 2 to pool 2x2", lambda: pool(t(1, 3, 1, 4))),
    Row(POOL, "x", "dtype", "bool", TypeError, "dtype in (float16, bfloat16, float32, float64), got torch.bool",
        lambda: pool(t(1, 3, 4, 4, dtype=torch.bool))),
    Row(POOL, "x", "dtype", "complex64", TypeError, "got torch.complex64", lambda: pool(torch.ones(1, 3, 4, 4, dtype=torch.complex64))),
    Row(POOL, "x", "layout", "sparse COO", TypeError, "a dense (strided) tensor", lambda: pool(sparse(1, 3, 4, 4))),
    Row(POOL, "x", "value", "no channels (2, 0, 4, 4)", ValueError, "a non-empty tensor, got shape (2, 0, 4, 4)",
        lambda: pool(t(2, 0, 4, 4))),
    Row(POOL, "x", "value", "2^31 elements or more", ValueError, "fewer than 2^31 elements", lambda: pool(meta(2**15, 64, 32, 32))),

    Row("fasthg.Residual(inp_dim, out_dim)", "out_dim", "value", "out_dim=1 (a bottleneck of 0 channels)", ValueError,
        "an int >= 2, got 1", lambda: fasthg.Residual(4, 1)),
    Row("fasthg.Residual(inp_dim, out_dim)", "inp_dim", "value", "inp_dim=0", ValueError, "an int >= 1, got 0",
        lambda: fasthg.Residual(0, 4)),
    Row("fasthg.Residual(inp_dim, out_dim)", "out_dim", "type", "out_dim=8.0", TypeError, "an int, got float",
        lambda: fasthg.Residual(4, 8.0)),
    Row(RESIDUAL, "x", "type", "a str", TypeError, "a torch.Tensor, got str", module_call(lambda: fasthg.Residual(5, 8), "x")),
    Row(RESIDUAL, "x", "rank", "3-D (2, 5, 4)", ValueError, "a 4-D tensor (N, C, H, W), got shape (2, 5, 4)",
        module_call(lambda: fasthg.Residual(5, 8), t(2, 5, 4))),
    Row(RESIDUAL, "x", "shape", "4 channels for a Residual(5, 8)", ValueError, "5 channels (dim 1), got shape (2, 4, 4, 4)",
        module_call(lambda: fasthg.Residual(5, 8), t(2, 4, 4, 4))),
    Row(RESIDUAL, "x", "dtype", "int32", TypeError, "dtype in (float16, bfloat16, float32, float64)",
        module_call(lambda: fasthg.Residual(5, 8), t(2, 5, 4, 4, dtype=torch.int32))),
    Row(RESIDUAL, "x", "dtype", "float64 for float32 parameters, no autocast", TypeError,
        "dtype torch.float32 like the module's parameters", module_call(lambda: fasthg.Residual(5, 8), t(2, 5, 4, 4, dtype=torch.float64))),
    Row(RESIDUAL, "weight", "device", "x on cpu for a module on meta", ValueError, "a tensor on cpu like x, got meta",
        module_call(lambda: fasthg.Residual(5, 8).to("meta"), t(2, 5, 4, 4))),
    Row(RESIDUAL, "x", "layout", "sparse COO", TypeError, "a dense (strided) tensor",
        module_call(lambda: fasthg.Residual(5, 8), sparse(2, 5, 4, 4))),
    Row(RESIDUAL, "x", "value", "an empty batch", ValueError, "a non-empty tensor, got shape (0, 5, 4, 4)",
        module_call(lambda: fasthg.Residual(5, 8), t(0, 5, 4, 4))),
    Row(RESIDUAL, "x", "value", "one value per channel in training (1, 5, 1, 1)", ValueError,
        "batch statistics need more than one value per channel", module_call(lambda: fasthg.Residual(5, 8), t(1, 5, 1, 1))),
    Row(RESIDUAL, "x", "value", "2^31 elements or more", ValueError, "fewer than 2^31 elements",
        module_call(lambda: fasthg.Residual(64, 128).to("meta"), meta(2**15, 64, 32, 32))),
    Row(UPSAMPLED, "upsampled", "type", "a list", TypeError, "a torch.Tensor, got list",
        module_call(lambda: fasthg.Residual(4, 4), t(2, 4, 4, 4), None, None, False, [1.0])),
    Row(UPSAMPLED, "upsampled", "shape", "x's size (2, 4, 4, 4)", ValueError,
        "shape (N, C, H/2, W/2) = (2, 4, 2, 2) for x of shape (2, 4, 4, 4) (even H and W), got (2, 4, 4, 4)",
        module_call(lambda: fasthg.Residual(4, 4), t(2, 4, 4, 4), None, None, False, t(2, 4, 4, 4))),
    Row(UPSAMPLED, "upsampled", "value", "any, to a Residual(5, 8) (a skip conv)", ValueError,
        "added only by a Residual with an identity skip (inp_dim == out_dim)",
        module_call(lambda: fasthg.Residual(5, 8), t(2, 5, 4, 4), None, None, False, t(2, 8, 2, 2))),
    Row(UPSAMPLED, "upsampled", "device", "meta with x on cpu", ValueError, "a tensor on cpu like x, got meta",
        module_call(lambda: fasthg.Residual(4, 4), t(2, 4, 4, 4), None, None, False, meta(2, 4, 2, 2))),

    Row("fasthg.Hourglass(n, f)", "n", "value", "n=0", ValueError, "an int >= 1, got 0", lambda: fasthg.Hourglass(0, 4)),
    Row("fasthg.Hourglass(n, f)", "f", "value", "f=1", ValueError, "an int >= 2, got 1", lambda: fasthg.Hourglass(2, 1)),
    Row("fasthg.Hourglass(n, f, increase)", "increase", "value", "increase=-1", ValueError, "an int >= 0, got -1",
        lambda: fasthg.Hourglass(2, 4, increase=-1)),
    Row(HOURGLASS, "x", "rank", "3-D", ValueError, "a 4-D tensor (N, C, H, W)", module_call(lambda: fasthg.Hourglass(2, 4), t(4, 8, 8))),
    Row(HOURGLASS, "x", "shape", "3 channels for f=4", ValueError, "4 channels (dim 1), got shape (2, 3, 8, 8)",
        module_call(lambda: fasthg.Hourglass(2, 4), t(2, 3, 8, 8))),
    Row(HOURGLASS, "x", "shape", "6x8 for n=2", ValueError, "height and width divisible by 2^n = 4",
        module_call(lambda: fasthg.Hourglass(2, 4), t(2, 4, 6, 8))),
    Row(HOURGLASS, "x", "value", "an empty batch", ValueError, "a non-empty tensor", module_call(lambda: fasthg.Hourglass(2, 4), t(0, 4, 8, 8))),
    Row(HOURGLASS, "x", "value", "batch 1 of 4x4 in training (innermost level 1x1)", ValueError,
        "batch statistics of the innermost level", module_call(lambda: fasthg.Hourglass(2, 4), t(1, 4, 4, 4))),
    Row(HOURGLASS, "x", "dtype", "bfloat16 for float32 parameters, no autocast", TypeError, "like the module's parameters",
        module_call(lambda: fasthg.Hourglass(2, 4), t(2, 4, 8, 8, dtype=torch.bfloat16))),

    Row("fasthg.nn.Pool(kernel_size, stride)", "kernel_size, stride", "option", "(3, 2)", ValueError, "(2, 2), got (3, 2)",
        lambda: fasthg.nn.Pool(3, 2)),

    Row("fasthg.PoseNet(nstack, inp_dim, oup_dim)", "nstack", "value", "nstack=0", ValueError, "an int >= 1, got 0",
        lambda: fasthg.PoseNet(0, 16, 4)),
    Row("fasthg.PoseNet(nstack, inp_dim, oup_dim)", "inp_dim", "value", "inp_dim=1", ValueError, "an int >= 2, got 1",
        lambda: fasthg.PoseNet(1, 1, 4)),
    Row("fasthg.PoseNet(nstack, inp_dim, oup_dim)", "oup_dim", "type", "oup_dim='16'", TypeError, "an int, got str",
        lambda: fasthg.PoseNet(1, 16, "16")),
    Row(POSENET, "imgs", "rank", "3-D (64, 64, 3)", ValueError, "a 4-D tensor (N, H, W, 3)", module_call(lambda: fasthg.PoseNet(1, 4, 2), t(64, 64, 3))),
    Row(POSENET, "imgs", "shape", "an NCHW batch (1, 3, 64, 64)", ValueError, "3 colour channels in dim 3",
        module_call(lambda: fasthg.PoseNet(1, 4, 2), t(1, 3, 64, 64))),
    Row(POSENET, "imgs", "shape", "4 channels", ValueError, "3 colour channels in dim 3", module_call(lambda: fasthg.PoseNet(1, 4, 2), t(1, 64, 64, 4))),
    Row(POSENET, "imgs", "shape", "96x64", ValueError, "height and width divisible by 64", module_call(lambda: fasthg.PoseNet(1, 4, 2), t(1, 96, 64, 3))),
    Row(POSENET, "imgs", "dtype", "uint8 pixels", TypeError, "dtype in (float16, bfloat16, float32, float64), got torch.uint8",
        module_call(lambda: fasthg.PoseNet(1, 4, 2), t(1, 64, 64, 3, dtype=torch.uint8))),
    Row(POSENET, "imgs", "dtype", "float64 for float32 parameters, no autocast", TypeError, "like the module's parameters",
        module_call(lambda: fasthg.PoseNet(1, 4, 2), t(2, 64, 64, 3, dtype=torch.float64))),
    Row(POSENET, "imgs", "value", "an empty batch", ValueError, "a non-empty tensor, got shape (0, 64, 64, 3)",
        module_call(lambda: fasthg.PoseNet(1, 4, 2), t(0, 64, 64, 3))),
    Row(POSENET, "imgs", "value", "batch 1 of 64x64 in training", ValueError, "batch statistics of the innermost hourglass level",
        module_call(lambda: fasthg.PoseNet(1, 4, 2), t(1, 64, 64, 3))),
    Row(STACKED, "x", "shape", "an NHWC batch (1, 64, 64, 3)", ValueError, "3 colour channels in dim 1",
        module_call(lambda: fasthg.StackedHourglass(1, 4, 2), t(1, 64, 64, 3))),

    Row(RENDER, "keypoints", "type", "a list", TypeError, "a torch.Tensor, got list", lambda: render_heatmaps([[1.0, 2.0]])),
    Row(RENDER, "keypoints", "rank", "2-D (3, 2)", ValueError, "a 3-D tensor (B, K, 2) x, y in heatmap pixels, got shape (3, 2)",
        lambda: render_heatmaps(t(3, 2))),
    Row(RENDER, "keypoints", "shape", "(2, 3, 3): not x, y", ValueError, "shape (B, K, 2) x, y in heatmap pixels, got (2, 3, 3)",
        lambda: render_heatmaps(t(2, 3, 3))),
    Row(RENDER, "keypoints", "dtype", "int64", TypeError, "dtype in (float16, bfloat16, float32, float64), got torch.int64",
        lambda: render_heatmaps(t(2, 3, 2, dtype=torch.int64))),
    Row(RENDER, "keypoints", "value", "an empty batch (0, 3, 2)", ValueError, "a non-empty tensor, got shape (0, 3, 2)",
        lambda: render_heatmaps(t(0, 3, 2))),
    Row(RENDER, "visible", "rank", "3-D (2, 3, 1)", ValueError, "a 2-D tensor (B, K), got shape (2, 3, 1)",
        lambda: render_heatmaps(t(2, 3, 2), t(2, 3, 1, dtype=torch.bool))),
    Row(RENDER, "visible", "shape", "(2, 4) for keypoints (2, 3, 2)", ValueError, "shape (B, K) = (2, 3) like keypoints, got (2, 4)",
        lambda: render_heatmaps(t(2, 3, 2), t(2, 4, dtype=torch.bool))),
    Row(RENDER, "visible", "dtype", "complex64", TypeError, "got torch.complex64",
        lambda: render_heatmaps(t(2, 3, 2), torch.ones(2, 3, dtype=torch.complex64))),
    Row(RENDER, "visible", "device", "meta with cpu keypoints", ValueError, "a tensor on cpu like keypoints, got meta",
        lambda: render_heatmaps(t(2, 3, 2), meta(2, 3))),
    Row(RENDER, "size", "type", "(64,)", TypeError, "a pair (H, W) of ints, got (64,)", lambda: render_heatmaps(t(2, 3, 2), None, (64,))),
    Row(RENDER, "size", "type", "(64.0, 64)", TypeError, "a pair (H, W) of ints, got (64.0, 64)",
        lambda: render_heatmaps(t(2, 3, 2), None, (64.0, 64))),
    Row(RENDER, "size", "value", "(0, 64)", ValueError, "H and W >= 1, got (0, 64)", lambda: render_heatmaps(t(2, 3, 2), None, (0, 64))),
    Row(RENDER, "sigma", "value", "0.0", ValueError, "a finite number > 0, got 0.0", lambda: render_heatmaps(t(2, 3, 2), sigma=0.0)),
    Row(RENDER, "sigma", "value", "-1.0", ValueError, "a finite number > 0, got -1.0", lambda: render_heatmaps(t(2, 3, 2), sigma=-1.0)),
    Row(RENDER, "sigma", "value", "NaN", ValueError, "a finite number > 0, got nan", lambda: render_heatmaps(t(2, 3, 2), sigma=float("nan"))),
    Row(RENDER, "sigma", "type", "'1'", TypeError, "a number, got str", lambda: render_heatmaps(t(2, 3, 2), sigma="1")),
    Row(RENDER, "style", "option", "'gaussian'", ValueError, "one of 'princeton', 'bearpaw', 'mmpose', 'unbiased', got 'gaussian'",
        lambda: render_heatmaps(t(2, 3, 2), style="gaussian")),

    Row(LOSS, "preds", "type", "a list", TypeError, "a torch.Tensor, got list", lambda: heatmap_loss([0.0], t(2, 3, 2))),
    Row(LOSS, "preds", "rank", "4-D (2, 3, 4, 4): one stack's heatmaps", ValueError,
        "a 5-D tensor (B, S, K, H, W), got shape (2, 3, 4, 4)", lambda: heatmap_loss(t(2, 3, 4, 4), t(2, 3, 2))),
    Row(LOSS, "preds", "shape", "batch 3 for keypoints (2, 3, 2)", ValueError,
        "shape (B, S, K, H, W) with (B, K) = (2, 3) like keypoints, got (3, 1, 3, 4, 4)", lambda: heatmap_loss(t(3, 1, 3, 4, 4), t(2, 3, 2))),
    Row(LOSS, "preds", "shape", "4 joints for keypoints (2, 3, 2)", ValueError, "with (B, K) = (2, 3) like keypoints, got (2, 1, 4, 4, 4)",
        lambda: heatmap_loss(t(2, 1, 4, 4, 4), t(2, 3, 2))),
    Row(LOSS, "preds", "dtype", "int32", TypeError, "dtype in (float16, bfloat16, float32, float64), got torch.int32",
        lambda: heatmap_loss(t(2, 1, 3, 4, 4, dtype=torch.int32), t(2, 3, 2))),
    Row(LOSS, "preds", "layout", "sparse COO", TypeError, "a dense (strided) tensor, got layout torch.sparse_coo",
        lambda: heatmap_loss(sparse(2, 1, 3, 4, 4), t(2, 3, 2))),
    Row(LOSS, "preds", "value", "no stacks (2, 0, 3, 4, 4)", ValueError, "a non-empty tensor, got shape (2, 0, 3, 4, 4)",
        lambda: heatmap_loss(t(2, 0, 3, 4, 4), t(2, 3, 2))),
    Row(LOSS, "preds", "value", "2^31 elements or more", ValueError, "fewer than 2^31 elements",
        lambda: heatmap_loss(meta(2**13, 8, 16, 64, 64), meta(2**13, 16, 2))),
    Row(LOSS, "keypoints", "rank", "2-D (2, 3)", ValueError, "a 3-D tensor (B, K, 2)", lambda: heatmap_loss(t(2, 1, 3, 4, 4), t(2, 3))),
    Row(LOSS, "keypoints", "shape", "(2, 3, 3): not x, y", ValueError, "shape (B, K, 2) x, y in heatmap pixels, got (2, 3, 3)",
        lambda: heatmap_loss(t(2, 1, 3, 4, 4), t(2, 3, 3))),
    Row(LOSS, "keypoints", "device", "meta with cpu preds", ValueError, "a tensor on cpu like preds, got meta",
        lambda: heatmap_loss(t(2, 1, 3, 4, 4), meta(2, 3, 2))),
    Row(LOSS, "visible", "shape", "(3, 2) for keypoints (2, 3, 2)", ValueError, "shape (B, K) = (2, 3) like keypoints, got (3, 2)",
        lambda: heatmap_loss(t(2, 1, 3, 4, 4), t(2, 3, 2), t(3, 2))),
    Row(LOSS, "sigma", "value", "0", ValueError, "a finite number > 0, got 0", lambda: heatmap_loss(t(2, 1, 3, 4, 4), t(2, 3, 2), sigma=0)),
    Row(LOSS, "style", "option", "'msra'", ValueError, "one of 'princeton', 'bearpaw', 'mmpose', 'unbiased', got 'msra'",
        lambda: heatmap_loss(t(2, 1, 3, 4, 4), t(2, 3, 2), style="msra")),
    Row(LOSS, "weighted", "type", "1", TypeError, "a bool, got int", lambda: heatmap_loss(t(2, 1, 3, 4, 4), t(2, 3, 2), weighted=1)),

    Row(DECODE, "heatmaps", "type", "a numpy array", TypeError, "a torch.Tensor, got ndarray", lambda: decode_heatmaps(t(1, 2, 4, 4).numpy())),
    Row(DECODE, "heatmaps", "rank", "3-D (2, 4, 4)", ValueError, "a 4-D tensor (B, K, H, W), got shape (2, 4, 4)",
        lambda: decode_heatmaps(t(2, 4, 4))),
    Row(DECODE, "heatmaps", "dtype", "int64", TypeError, "dtype in (float16, bfloat16, float32, float64), got torch.int64",
        lambda: decode_heatmaps(t(1, 2, 4, 4, dtype=torch.int64))),
    Row(DECODE, "heatmaps", "layout", "sparse COO", TypeError, "a dense (strided) tensor", lambda: decode_heatmaps(sparse(1, 2, 4, 4))),
    Row(DECODE, "heatmaps", "value", "no joints (1, 0, 4, 4)", ValueError, "a non-empty tensor, got shape (1, 0, 4, 4)",
        lambda: decode_heatmaps(t(1, 0, 4, 4))),
    Row(DECODE, "heatmaps", "value", "2^31 elements or more", ValueError, "fewer than 2^31 elements",
        lambda: decode_heatmaps(meta(2**15, 16, 64, 64))),
    Row(DECODE, "style", "option", "'unbiased' (a target style, no decoding)", ValueError,
        "one of 'princeton', 'bearpaw', 'mmpose', got 'unbiased'", lambda: decode_heatmaps(t(1, 2, 4, 4), "unbiased")),

    Row(PCKH, "pred", "type", "an object", TypeError, "an array or tensor (N, 16, 2), got object", lambda: pckh(pred=object())),
    Row(PCKH, "pred", "rank", "2-D (4, 16)", ValueError, "shape (N, 16, 2), got (4, 16)", lambda: pckh(pred=t(4, 16))),
    Row(PCKH, "gt", "shape", "15 joints", ValueError, "shape (N, 16, 2) in MPII joint order, got (4, 15, 2)",
        lambda: pckh(t(4, 15, 2), t(4, 15, 2), t(4, 15, dtype=torch.bool))),
    Row(PCKH, "pred", "shape", "3 people, gt has 4", ValueError, "the shape of gt (4, 16, 2), got (3, 16, 2)",
        lambda: pckh(pred=t(3, 16, 2))),
    Row(PCKH, "annotated", "shape", "(4, 14)", ValueError, "shape (4, 16), got (4, 14)", lambda: pckh(annotated=t(4, 14))),
    Row(PCKH, "normalize", "shape", "3 head sizes for 4 people", ValueError, "shape (4,), got (3,)",
        lambda: pckh(normalize=torch.ones(3))),
    Row(PCKH, "normalize", "value", "a head size of 0", ValueError, "finite head sizes > 0, got [0.0]",
        lambda: pckh(normalize=torch.tensor([1.0, 0.0, 1.0, 1.0]))),
    Row(PCKH, "normalize", "value", "a NaN head size", ValueError, "finite head sizes > 0, got [nan]",
        lambda: pckh(normalize=torch.tensor([1.0, float("nan"), 1.0, 1.0]))),
    Row(PCKH, "threshold", "type", "'0.5'", TypeError, "a number, got str", lambda: pckh(threshold="0.5")),
    Row(PCKH, "threshold", "type", "True", TypeError, "a number, got bool", lambda: pckh(threshold=True)),
    Row(PCKH, "threshold", "value", "0", ValueError, "a finite number > 0, got 0", lambda: pckh(threshold=0)),
    Row(PCKH, "threshold", "value", "-0.5", ValueError, "a finite number > 0, got -0.5", lambda: pckh(threshold=-0.5)),
    Row(PCKH, "threshold", "value", "inf", ValueError, "a finite number > 0, got inf", lambda: pckh(threshold=float("inf"))),
    Row(PCKH, "convention", "option", "'lsp'", ValueError, "one of 'mpii', 'all16', 'mmpose', got 'lsp'", lambda: pckh(convention="lsp")),

    Row("fasthg.set_backend(name)", "backend", "option", "'cuda'", ValueError, "one of 'auto', 'triton', 'torch', got 'cuda'",
        lambda: fasthg.set_backend("cuda")),
    Row("fasthg.backend(name)", "backend", "option", "'gpu'", ValueError, "one of 'auto', 'triton', 'torch', got 'gpu'",
        lambda: fasthg.backend("gpu")),
    Row("fasthg.load_state_dict_compat(src, model)", "src", "type", "an int", TypeError,
        "a state_dict, a checkpoint dict, a path or a file object, got int", lambda: fasthg.load_state_dict_compat(42)),
    Row("fasthg.load_state_dict_compat(src, model)", "src", "value", "another model's state_dict", ValueError,
        "does not fit Residual: missing keys", lambda: fasthg.load_state_dict_compat({"w": torch.zeros(1)}, fasthg.Residual(4, 8))),
    Row("fasthg.PoseEstimator(checkpoint_or_model, ...)", "checkpoint_or_model", "type", "an int", TypeError,
        "a path, a run folder, a state_dict or a PoseNet module, got int", lambda: fasthg.PoseEstimator(42)),
    Row("fasthg.PoseEstimator(checkpoint_or_model, ...)", "checkpoint_or_model", "value", "a Linear module", ValueError,
        "a Linear is not a PoseNet", lambda: fasthg.PoseEstimator(torch.nn.Linear(2, 2))),
    Row("fasthg.PoseEstimator(checkpoint_or_model, ...)", "checkpoint_or_model", "value", "a dict of other tensors",
        ValueError, "expected a PoseNet state_dict", lambda: fasthg.PoseEstimator({"w": torch.zeros(1)})),
    Row("fasthg.PoseEstimator(model, amp)", "amp", "option", "'yes'", ValueError, "one of auto, off, bf16, fp16",
        lambda: fasthg.PoseEstimator(posenet(), amp="yes")),
    Row("fasthg.PoseEstimator(model, heatmap_style)", "heatmap_style", "option", "'gaussian'", ValueError,
        "one of princeton, bearpaw, mmpose, unbiased, got 'gaussian'",
        lambda: fasthg.PoseEstimator(posenet(), heatmap_style="gaussian")),
    Row("fasthg.PoseEstimator(model, input_size)", "input_size", "value", "100", ValueError, "a multiple of 64",
        lambda: fasthg.PoseEstimator(posenet(), input_size=100)),
    Row("fasthg.PoseEstimator(model, flip_test)", "flip_pairs", "value", "a flip test of 5 joints, no pairs",
        ValueError, "needs each joint's mirror joint", lambda: fasthg.PoseEstimator(posenet(joints=5), flip_test=True)),
    Row("estimator(image, box)", "images[0]", "type", "a list", TypeError, "a NumPy array or a torch tensor",
        lambda: fasthg.PoseEstimator(posenet())([[0, 0], [0, 0]])),
    Row("estimator(image, box)", "images[0]", "dtype", "float32 pixels", TypeError, "uint8 pixels",
        lambda: fasthg.PoseEstimator(posenet())(numpy.zeros((8, 8, 3), numpy.float32))),
    Row("estimator(image, box)", "images[0]", "shape", "CHW (3, 8, 8)", ValueError, "(H, W, 3) or (H, W, 4), got (3, 8, 8)",
        lambda: fasthg.PoseEstimator(posenet())(numpy.zeros((3, 8, 8), numpy.uint8))),
    Row("estimator(image, box)", "images[0]", "value", "an empty image", ValueError, "a non-empty image",
        lambda: fasthg.PoseEstimator(posenet())(numpy.zeros((0, 8, 3), numpy.uint8))),
    Row("estimator(image, box)", "boxes[0]", "value", "x1 < x0", ValueError, "finite x0 < x1 and y0 < y1",
        lambda: fasthg.PoseEstimator(posenet())(numpy.zeros((8, 8, 3), numpy.uint8), (5, 0, 1, 4))),
    Row("estimator(image, box)", "boxes[0]", "value", "a box beside the image", ValueError, "lies outside the 8x8 image",
        lambda: fasthg.PoseEstimator(posenet())(numpy.zeros((8, 8, 3), numpy.uint8), (10, 0, 20, 4))),
    Row("estimator.batch(images, boxes)", "boxes", "value", "one box for two images", ValueError,
        "one box (or None) per image, 2, got 1",
        lambda: fasthg.PoseEstimator(posenet()).batch([numpy.zeros((8, 8, 3), numpy.uint8)] * 2, [None])),
]


def posenet(joints=16):
    """The smallest PoseNet, for the estimator's rows (none of them runs it)."""
    return fasthg.reference.PoseNet(1, 2, joints)


def row_id(row):
    return f"{row.function.split('(')[0]}-{row.argument}-{row.wrong}-{row.given}"


def render():
    """docs/bad_input.md, as generated from ROWS."""
    lines = [
        "# Bad input: what each public function says",
        "",
        "Every public function and module of fasthg checks its arguments before any kernel launch and",
        "rejects a wrong one with a `ValueError` (wrong value, shape, rank, device) or `TypeError` (wrong",
        "type, dtype, layout) whose message starts with the argument's name and says what was expected.",
        "A module whose call is rejected is left as it was (running statistics, batch counters).",
        "",
        "Generated by `python tests/bad_inputs.py` from the table that `tests/test_bad_input.py` runs row by",
        "row; a test fails when this file is out of date.",
        "",
        "| function | argument | wrong | given | error | message (excerpt) |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        cells = [f"`{row.function}`", f"`{row.argument}`", row.wrong, row.given, row.error.__name__,
                 f"`{row.argument}: ...{row.expect}`"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(ROWS)} rows)", file=sys.stderr)
