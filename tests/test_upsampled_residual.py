"""An hourglass's up1 + nearest_x2(low3) in up1's conv3 epilogue (issue #16, fusion across module
boundaries): a Residual with ``upsampled`` against the reference Residual plus F.interpolate,
forward and backward, in training and eval, with its output's statistics for the next BN; and an
Hourglass whose levels launch no upsample-add kernel of their own (bad ``upsampled``: tests/bad_inputs.py).
"""
import pytest
import torch
import torch.nn.functional as F

import fasthg
from fasthg import reference
from fasthg.nn.chaining import next_batch_norm
from harness import assert_buffers_close, assert_close
from opinfo import pair
from test_statistics_chaining import kernels, launches_of


def leaf(x):
    return x.detach().clone().requires_grad_()


def residual_pair(dtype):
    fused, ref = pair(lambda: fasthg.Residual(4, 4), lambda: reference.Residual(4, 4))
    return fused.to(dtype), ref.to(dtype)


def run_both(fused, ref, x, low, grad):
    """(fused out, reference out) after both backwards, from leaves of x and low."""
    leaves = [leaf(x), leaf(low), leaf(x), leaf(low)]
    out = fused(leaves[0], upsampled=leaves[1])
    expected = ref(leaves[2]) + F.interpolate(leaves[3], scale_factor=2, mode="nearest")
    out.backward(grad)
    expected.backward(grad)
    return out, expected, leaves


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_matches_the_reference_plus_the_upsampled_tensor(triton_backend, training, dtype):
    fused, ref = residual_pair(dtype)
    fused.train(training), ref.train(training)
    x, low = torch.randn(2, 4, 6, 8, dtype=dtype), torch.randn(2, 4, 3, 4, dtype=dtype)
    grad = torch.randn(2, 4, 6, 8, dtype=dtype)
    out, expected, (x1, low1, x2, low2) = run_both(fused, ref, x, low, grad)
    assert_close(out, expected, "out")
    assert_close(x1.grad, x2.grad, "grad x")
    assert_close(low1.grad, low2.grad, "grad upsampled")
    grads = [(name, p.grad, q.grad) for (name, p), (_, q) in zip(fused.named_parameters(), ref.named_parameters())
             if q.grad is not None]
    scale = max(float(expected.abs().max()) for _, _, expected in grads)  # zero-in-exact-arithmetic biases
    for name, got, want in grads:
        assert_close(got, want, f"grad {name}", scale=scale)
    assert_buffers_close(fused, ref)


def test_reduces_the_statistics_of_the_sum_for_the_next_bn(triton_backend):
    fused, _ = residual_pair(torch.float64)
    following = torch.nn.BatchNorm2d(4).double()
    x, low = torch.randn(2, 4, 6, 8, dtype=torch.float64), torch.randn(2, 4, 3, 4, dtype=torch.float64)
    out, stats = fused(x, next_bn=next_batch_norm(following), upsampled=low)
    mean, var = stats.chunk(2)
    assert_close(mean, out.mean((0, 2, 3)), "mean")
    assert_close(var, out.var((0, 2, 3), unbiased=False), "var")
    assert_close(following.running_mean, 0.1 * out.mean((0, 2, 3)), "next running mean")


def test_torch_path_adds_the_upsampled_tensor(torch_backend):
    fused, ref = residual_pair(torch.float64)
    x, low = torch.randn(2, 4, 6, 8, dtype=torch.float64), torch.randn(2, 4, 3, 4, dtype=torch.float64)
    out, expected, (_, low1, _, low2) = run_both(fused, ref, x, low, torch.ones(2, 4, 6, 8, dtype=torch.float64))
    assert_close(out, expected, "out")  # channels_last 3x3 weights: other conv kernels, other rounding
    assert_close(low1.grad, low2.grad, "grad upsampled", rtol=0, atol=0)


def test_an_hourglass_launches_no_upsample_add_of_its_own():
    """Each level's up1 adds its inner branch in conv3's epilogue; backward sum-pools its gradient once."""
    levels = 3
    with torch.device("meta"):
        model, x = fasthg.Hourglass(levels, 16), torch.empty(2, 16, 32, 32)
    launches = launches_of(lambda: model(x).sum().backward())
    assert kernels(launches, "upsample_add_forward_kernel") == 0
    assert kernels(launches, "conv_forward_kernel", ADD_UPSAMPLED=True) == levels
    assert kernels(launches, "upsample_add_backward_kernel") == levels
