"""Split-K weight gradients and reduction trees (kernels/conv.py, kernels/helpers.py).

The interpreter's configurations split a weight gradient into one slice per row tile (at these
sizes) and combine in trees of two, so the small shapes here run trees of several levels; a shape of one row tile
runs the unsplit path. Parity is judged in fp64 against fasthg.reference, and the combine order
is checked to be fixed: the same bits whichever program of a tree arrives last.
"""
import pytest
import torch

from bench.launches import recording_launches
from fasthg.kernels import registry
from fasthg.ops import launch
from fasthg.ops.conv_launchers import PROGRAMS_PER_MULTIPROCESSOR, wgrad_split
from harness import assert_close
from test_determinism import Schedule
from test_residual import ZERO_IN_EXACT_ARITHMETIC, make_pair, run

# (in, out, N, H, W): 3 * 11 * 13 = 429 rows are 4 row tiles of 128, the last partial (slices of a
# tree 4 -> 2 -> 1); 5 * 5 * 7 = 175 rows split in two uneven slices with an identity skip;
# 1 * 8 * 16 = 128 rows are a single slice.
SHAPES = {"4-slices-skip-conv": (5, 8, 3, 11, 13), "2-slices-identity": (6, 6, 5, 5, 7), "1-slice": (4, 8, 1, 8, 16)}


def _backward_slices(module, x, grad_out):
    """Runs the module forward and backward; returns the gradients and the row slices of each wgrad launch."""
    slices = []

    def on_launch(launch):
        a = launch.arguments
        if launch.kernel == "conv_backward_kernel" and a["WGRAD"]:
            slices.append(-(-a["N"] * a["H"] * a["W"] // a["slice_rows"]))

    with recording_launches(on_launch, run=True):
        result = run(module, x, grad_out)
    return result, slices


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_split_weight_gradients_match_reference_in_fp64(triton_backend, shape):
    inp, out_dim, n, h, w = shape
    ref, fused = make_pair(inp, out_dim)
    x = torch.randn(n, inp, h, w, dtype=torch.float64) * 2 + 0.5
    grad_out = torch.randn(n, out_dim, h, w, dtype=torch.float64)
    (_, ref_dx, ref_grads) = run(ref, x, grad_out)
    (_, dx, grads), slices = _backward_slices(fused, x, grad_out)
    expected_slices = -(-n * h * w // 128)
    assert slices == [expected_slices] * 3, f"wgrad launches split into {slices} slices, expected {expected_slices}"
    assert_close(dx, ref_dx, "grad x", rtol=1e-9, atol=1e-9)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, ref_grad in ref_grads.items():
        if name in ZERO_IN_EXACT_ARITHMETIC:
            assert float(grads[name].abs().max()) <= 1e-9 * scale, f"grad {name} should be rounding noise"
        else:
            assert_close(grads[name], ref_grad, f"grad {name}", rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("order", ["reverse", "shuffle"])
def test_split_gradients_are_bit_identical_in_any_program_order(triton_backend, order):
    inp, out_dim, n, h, w = SHAPES["4-slices-skip-conv"]
    _, fused = make_pair(inp, out_dim, torch.float32)
    x = torch.randn(n, inp, h, w)
    grad_out = torch.randn(n, out_dim, h, w)
    _, _, first = run(fused, x, grad_out)
    first = {name: g.clone() for name, g in first.items()}
    for p in fused.parameters():
        p.grad = None
    with Schedule(order, seed=3) as schedule:
        _, _, second = run(fused, x, grad_out)
    assert schedule.largest_grid >= 8, f"only {schedule.largest_grid} programs: nothing to reorder"
    for name in first:
        assert torch.equal(first[name], second[name]), \
            f"grad {name} differs by up to {float((first[name] - second[name]).abs().max()):.3e} in {order} order"


@pytest.mark.parametrize("leaves, group, nodes", [(1, 8, 1), (2, 2, 3), (5, 2, 11), (4096, 8, 4681), (9, 4, 13)])
def test_tree_sizes(leaves, group, nodes):
    # 5 leaves in pairs: 5 + 3 + 2 + 1; 4096 in eights: 4096 + 512 + 64 + 8 + 1; 9 in fours: 9 + 3 + 1.
    assert launch.tree_nodes(leaves, group) == nodes
    assert launch.tree_counters(leaves, group) == nodes - leaves


# Full-size convs of the 8-stack bf16 training step: (rows, C_out, im2col columns, C_skip, dgrad K-steps).
FULL_SIZE_CONVS = {
    "3x3 128->128 at 64x64": (16 * 64 * 64, 128, 128 * 9, 0, 9 * 8),
    "1x1 256->128 at 64x64": (16 * 64 * 64, 128, 256, 0, 8),
    "1x1 128->256 + skip at 128x128": (16 * 128 * 128, 256, 128, 64, 16),
    "3x3 64->64 at 128x128": (16 * 128 * 128, 64, 64 * 9, 0, 9 * 4),
    "head 256->16 at 64x64, no dgrad": (16 * 64 * 64, 16, 256, 0, 0),
    "1x1 256->128 at 4x4": (16 * 4 * 4, 128, 256, 0, 8),
}


@pytest.mark.parametrize("sizes", FULL_SIZE_CONVS.values(), ids=FULL_SIZE_CONVS.keys())
def test_weight_gradients_fill_an_h100_at_full_size(sizes):
    rows, c_out, columns, c_skip, dgrad_steps = sizes
    with registry.emulating(90):
        config = registry.lookup("conv_backward", torch.bfloat16, torch.device("cpu"), KSIZE=3, GRAD_BN=True)
    blocks, balance, least = config.constexprs, config.extra["slice_balance"], config.extra["min_slice_steps"]
    split = wgrad_split(rows, c_out, columns, c_skip, 0, dgrad_steps, blocks, config.extra, torch.device("meta"))
    row_tiles = -(-rows // blocks["BLOCK_M"])
    steps = split.slice_rows // blocks["BLOCK_M"]
    assert split.slice_rows % blocks["BLOCK_M"] == 0
    assert (split.slices - 1) * split.slice_rows < rows <= split.slices * split.slice_rows
    wanted = PROGRAMS_PER_MULTIPROCESSOR * launch.MODELLED_MULTIPROCESSORS
    filling = split.tiles * row_tiles // wanted
    if filling > max(balance * dgrad_steps, least):  # the GPU is the limit: enough programs per SM, not many more
        assert wanted <= split.programs <= 2 * wanted + split.tiles, f"{split.programs} programs"
    else:  # the launch's dgrad programs are the limit, or the least slice: nothing longer
        assert split.slices == 1 or steps == max(balance * dgrad_steps, least)
