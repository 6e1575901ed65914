"""fasthg modules inside PyTorch's machinery: torch.compile, autocast, channels_last."""
import pytest
import torch

import fasthg
from fasthg import reference
from harness import assert_as_accurate_as_eager, assert_buffers_close, assert_close
from test_residual import make_pair


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_residual(triton_backend, compiler):
    _, fused = make_pair(5, 8, torch.float32)
    x = torch.randn(2, 5, 4, 4)
    expected = fused(x)
    expected_grad, = torch.autograd.grad(fused(x.requires_grad_()).sum(), x)
    compiled = torch.compile(fused, fullgraph=True, backend=compiler)
    out = compiled(x)
    grad, = torch.autograd.grad(out.sum(), x)
    assert_close(out, expected, "output")
    assert_close(grad, expected_grad, "grad x")


def test_torch_compile_fullgraph_model(triton_backend):
    model = fasthg.StackedHourglass(1, 8, 3).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        assert_close(compiled(x), expected, "output")


def test_torch_compile_fullgraph_training_counts_steps_like_eager(triton_backend):
    torch.manual_seed(0)
    eager, model = fasthg.Hourglass(1, 4), fasthg.Hourglass(1, 4)
    model.load_state_dict(eager.state_dict())
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for step in range(2):
        x = torch.randn(2, 4, 4, 4) + step
        assert_close(compiled(x), eager(x), f"output of step {step}")
    assert_buffers_close(model, eager)
    assert int(model.up1.bn1.num_batches_tracked) == 2


@pytest.mark.parametrize("skip", ["identity", "conv"])
def test_cpu_eval_path_under_autocast_keeps_the_reference_s_dtype(torch_backend, skip):
    """The eval path adds the skip in place: not when autocast makes the sum wider than the conv."""
    inp, out = (6, 6) if skip == "identity" else (5, 8)
    exact_ref, _ = make_pair(inp, out, torch.float64)
    eager_ref, fused = make_pair(inp, out, torch.float32)
    for module in (exact_ref, eager_ref, fused):
        module.eval()
    x = torch.randn(2, inp, 4, 6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, eager = fused(x), eager_ref(x)
    assert got.dtype == eager.dtype, (got.dtype, eager.dtype)
    with torch.no_grad():
        assert_as_accurate_as_eager(got, eager, exact_ref(x.double()), "output")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_runs_the_kernels_in_the_autocast_dtype(triton_backend, dtype):
    exact_ref, _ = make_pair(5, 8, torch.float64)
    eager_ref, fused = make_pair(5, 8, torch.float32)
    x = torch.randn(2, 5, 4, 6)
    with torch.autocast("cpu", dtype=dtype):
        out, eager = fused(x), eager_ref(x)
    assert out.dtype == dtype == eager.dtype
    assert fused.conv1.conv.weight.dtype == torch.float32  # parameters untouched
    assert_as_accurate_as_eager(out, eager, exact_ref(x.double()), "output")
