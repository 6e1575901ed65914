"""Gradient sums inside kernels (issue #16, item 3): where a tensor feeds two fused ops, the first
passes it on to the second (``pass_input``: an alias that autograd sees as the first op's output),
and the first op's backward adds the second's gradient of it as it writes its own, instead of
autograd adding the two in a separate pass.

Each boundary alone (a Residual's dx kernel, with an identity skip and a skip conv; the 2x2
max-pool's backward, even and odd sizes; an unused pass-through; a pass-through that alone reaches
the loss), an Hourglass passing its input on against the reference, eagerly and compiled, and the
launches of a model's training step: no aten::add of gradients left.
"""
import pytest
import torch
import torch.nn.functional as F

import fasthg
from bench.counting import KernelCounter
from fasthg import reference
from fasthg.kernels import registry
from harness import assert_buffers_close, assert_close
from opinfo import pair
from test_statistics_chaining import kernels, launches_of


def leaf(x):
    return x.detach().clone().requires_grad_()


@pytest.mark.parametrize("inp, out_dim", [(3, 4), (4, 4)], ids=["skip-conv", "identity"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_residual_adds_its_pass_through_s_gradient_to_dx(triton_backend, inp, out_dim, dtype):
    """x's gradient from the pass-through's consumer is added in the dx kernel: as autograd's sum,
    up to the one rounding the sum saves."""
    fused = pair(lambda: fasthg.Residual(inp, out_dim), lambda: reference.Residual(inp, out_dim))[0].to(dtype)
    x = torch.randn(2, inp, 5, 6, dtype=dtype)
    grad_out, grad_through = torch.randn(2, out_dim, 5, 6, dtype=dtype), torch.randn_like(x)
    alone, passing = leaf(x), leaf(x)
    expected_out = fused(alone)
    expected_out.backward(grad_out)
    out, stats, through = fused(passing, pass_input=True)
    assert stats is None and through.data_ptr() == passing.data_ptr()  # x itself, no copy
    torch.autograd.backward([out, through], [grad_out, grad_through])
    assert_close(out, expected_out, "out", rtol=0, atol=0)
    assert_close(passing.grad, alone.grad + grad_through, "grad x")


def test_residual_whose_output_is_unused_passes_the_gradient_on(triton_backend):
    fused = pair(lambda: fasthg.Residual(3, 4), lambda: reference.Residual(3, 4))[0]
    x = leaf(torch.randn(2, 3, 4, 5, dtype=torch.float64))
    _, _, through = fused(x, pass_input=True)
    grad_through = torch.randn_like(x)
    through.backward(grad_through)
    assert_close(x.grad, grad_through, "grad x", rtol=0, atol=0)
    for name, parameter in fused.named_parameters():
        assert parameter.grad is None or not parameter.grad.any(), name


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 67, 5, 7)], ids=["even", "odd"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_max_pool_adds_its_pass_through_s_gradient(triton_backend, shape, dtype):
    """Autograd's sum bitwise: the kernel adds in fp32 (fp64) and rounds once, as aten's add does
    (bf16 within one rounding: the interpreter converts fp32 to bf16 by truncation, a GPU and aten
    to nearest even); a trailing odd row or column, which no window covers, gets the pass-through's
    gradient alone."""
    x = leaf(torch.randn(shape, dtype=dtype))
    out, stats, through = fasthg.ops.max_pool2x2(x, pass_input=True)
    assert stats is None and through.data_ptr() == x.data_ptr()
    grad, grad_through = torch.randn_like(out), torch.randn_like(x)  # grad_through NCHW: converted by the op
    torch.autograd.backward([out, through], [grad, grad_through])
    expected, = torch.autograd.grad(F.max_pool2d(x, 2), x, grad)
    assert_close(out, F.max_pool2d(x, 2), "out", rtol=0, atol=0)
    assert_close(x.grad, expected + grad_through, "grad x", rtol=2**-7 if dtype == torch.bfloat16 else 0, atol=0)


def test_max_pool_s_unused_pass_through_adds_nothing(triton_backend):
    x = leaf(torch.randn(2, 3, 6, 8))
    out, _, _ = fasthg.ops.max_pool2x2(x, pass_input=True)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected, = torch.autograd.grad(F.max_pool2d(x, 2), x, grad)
    assert_close(x.grad, expected, "grad x", rtol=0, atol=0)
    with torch.device("meta"):
        x = torch.empty(2, 3, 6, 8, requires_grad=True)

    def step():
        out, _, _ = fasthg.ops.max_pool2x2(x, pass_input=True)
        out.sum().backward()
    launches = launches_of(step)
    assert kernels(launches, "max_pool2x2_backward_kernel", HAS_THROUGH=False) == 1 and len(launches) == 2


def test_max_pool_whose_output_is_unused_passes_the_gradient_on(triton_backend):
    x = leaf(torch.randn(2, 3, 6, 8))
    _, _, through = fasthg.ops.max_pool2x2(x, pass_input=True)
    grad_through = torch.randn_like(x)
    through.backward(grad_through)
    assert_close(x.grad, grad_through, "grad x", rtol=0, atol=0)


def hourglass_pair():
    return pair(lambda: fasthg.Hourglass(2, 4), lambda: reference.Hourglass(2, 4))


def assert_hourglass_gradients(fused, ref, x, ref_x, grad_through):
    """x's gradient is the reference's plus the pass-through's; every parameter's gradient the reference's."""
    assert_close(x.grad, ref_x.grad + grad_through, "grad x")
    grads = [(name, p.grad, q.grad) for (name, p), (_, q) in zip(fused.named_parameters(), ref.named_parameters())
             if q.grad is not None]
    # conv biases feeding train-mode BNs have zero gradients in exact arithmetic: judged on the others' scale
    scale = max(float(expected.abs().max()) for _, _, expected in grads)
    for name, got, expected in grads:
        assert_close(got, expected, f"grad {name}", scale=scale)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_hourglass_passes_its_input_on(triton_backend, training):
    """The pool passes x to up1, up1 to the caller: x's gradient from all three is the
    reference's sum; values, parameter gradients and buffers are the reference's."""
    fused, ref = hourglass_pair()
    fused.train(training), ref.train(training)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    fused_x, ref_x = leaf(x), leaf(x)
    out, stats, through = fused(fused_x, pass_input=True)
    ref_out = ref(ref_x)
    assert stats is None and through.data_ptr() == fused_x.data_ptr()
    assert_close(out, ref_out, "out")
    grad, grad_through = torch.randn_like(ref_out), torch.randn_like(x)
    torch.autograd.backward([out, through], [grad, grad_through])
    ref_out.backward(grad)
    assert_hourglass_gradients(fused, ref, fused_x, ref_x, grad_through)
    assert_buffers_close(fused, ref)


def test_torch_compile_fullgraph_hourglass_passing_its_input_on(triton_backend):
    fused, ref = hourglass_pair()
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    fused_x, ref_x = leaf(x), leaf(x)
    out, _, through = compiled(fused_x, pass_input=True)
    ref_out = ref(ref_x)
    assert_close(out, ref_out, "out")
    grad, grad_through = torch.randn_like(ref_out), torch.randn_like(x)
    torch.autograd.backward([out, through], [grad, grad_through])
    ref_out.backward(grad)
    assert_hourglass_gradients(fused, ref, fused_x, ref_x, grad_through)


def test_no_gradient_sum_outside_the_kernels_in_a_training_step():
    """Each hourglass level's pool adds up1's gradient of x in its backward, each outer up1 the head
    merge's in its dx kernel (but the last stack's, which has no merge): autograd adds no two gradients."""
    nstack = 3
    with torch.device("meta"):
        model, images = fasthg.PoseNet(nstack, 16, 4), torch.empty(2, 128, 128, 3)
    counter = KernelCounter()
    with registry.emulating(90), counter:
        model(images).sum().backward()
    assert [kernel.label for kernel in counter.kernels if kernel.op == "aten::add"] == []
    launches = launches_of(lambda: model(images).sum().backward())
    dx_kernels = dict(APPLY_BN=True)  # each Residual's last launch
    assert kernels(launches, "conv_backward_kernel", **dx_kernels, HAS_THROUGH=True) == nstack - 1  # outer up1s
    assert kernels(launches, "conv_backward_kernel", **dx_kernels, HAS_THROUGH=False) == 13 * nstack + 4  # the others
    assert kernels(launches, "max_pool2x2_backward_kernel", HAS_THROUGH=True) == 4 * nstack  # each level's pool
    assert kernels(launches, "max_pool2x2_backward_kernel", HAS_THROUGH=False) == 1  # the stem's


@pytest.mark.parametrize("call", [
    lambda x: fasthg.Residual(4, 4)(x, pass_input=1),
    lambda x: fasthg.ops.max_pool2x2(x, pass_input=None),
    lambda x: fasthg.Hourglass(1, 4)(x, pass_input="yes"),
], ids=["residual", "max_pool2x2", "hourglass"])
def test_pass_input_must_be_a_bool(triton_backend, call):
    with pytest.raises(TypeError, match="pass_input: expected a bool, got"):
        call(torch.randn(2, 4, 4, 4))
