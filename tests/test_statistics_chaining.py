"""Statistics from the producer (issue #16, item 1): the op that writes a tensor reduces its batch
statistics for the fused BN that normalises it next, and updates that BN's running statistics.

Each producer alone (upsample-add, the 2x2 max-pool, a Residual's conv3 with a skip conv or an
identity skip, the stack head's merge) against torch.var_mean and an nn.BatchNorm2d's own running
update; a Residual fed those statistics against the reference; and inside the models, where no
Residual but the stem's consumer reduces its own input's statistics.
"""
import pytest
import torch

import fasthg
from bench.counting import LaunchRecorder
from fasthg.kernels import registry
from fasthg import reference
from fasthg.ops.statistics import NextBatchNorm
from harness import assert_buffers_close, assert_close
from opinfo import pair, residual_forward_args, stack_head_pair

MOMENTUM = 0.3


def next_batch_norm(channels, dtype):
    """A reference nn.BatchNorm2d with random running statistics, and a NextBatchNorm over copies of them."""
    bn = torch.nn.BatchNorm2d(channels, momentum=MOMENTUM).to(dtype)
    with torch.no_grad():
        bn.running_mean.normal_(0, 1), bn.running_var.uniform_(0.5, 2.0)
    return bn, NextBatchNorm(bn.running_mean.clone(), bn.running_var.clone(), MOMENTUM)


def assert_statistics_for(bn, next_bn, out, stats, dtype):
    """``stats`` is (mean, biased var) of ``out`` per channel, end to end, and ``next_bn``'s running
    statistics moved as a training forward of ``bn`` over ``out`` moves bn's."""
    var, mean = torch.var_mean(out.detach().double(), dim=(0, 2, 3), unbiased=False)
    assert stats.dtype == (torch.float64 if dtype == torch.float64 else torch.float32), stats.dtype
    assert_close(stats, torch.cat([mean, var]).to(stats.dtype), "stats")
    bn.train()(out.detach())
    assert_close(next_bn.running_mean, bn.running_mean, "running_mean")
    assert_close(next_bn.running_var, bn.running_var, "running_var")


DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
def test_upsample_add_reduces_the_statistics_of_its_sum(triton_backend, dtype):
    torch.manual_seed(0)
    low, skip = torch.randn(2, 5, 3, 4, dtype=dtype) + 2.0, torch.randn(2, 5, 6, 8, dtype=dtype)
    bn, next_bn = next_batch_norm(5, dtype)
    out, stats = fasthg.ops.upsample_add(low, skip, next_bn)
    assert_close(out, fasthg.reference.upsample_add(low, skip), "out", rtol=0, atol=0)
    assert_statistics_for(bn, next_bn, out, stats, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_reduces_the_statistics_of_its_maxima(triton_backend, dtype):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9, dtype=dtype) - 3.0  # odd sizes: a row and a column no window covers
    bn, next_bn = next_batch_norm(5, dtype)
    out, stats = fasthg.ops.max_pool2x2(x, next_bn)
    assert_close(out, torch.nn.functional.max_pool2d(x, 2), "out", rtol=0, atol=0)
    assert_statistics_for(bn, next_bn, out, stats, dtype)


@pytest.mark.parametrize("inp, out_dim", [(3, 4), (4, 4)], ids=["skip-conv", "identity"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_reduces_the_statistics_of_its_output(triton_backend, inp, out_dim, dtype):
    fused, ref = (m.to(dtype) for m in pair(lambda: fasthg.Residual(inp, out_dim), lambda: reference.Residual(inp, out_dim)))
    x = torch.randn(2, inp, 5, 6, dtype=dtype)
    bn, next_bn = next_batch_norm(out_dim, dtype)
    out, stats = fused(x, next_bn=next_bn)
    assert_close(out, ref(x), "out")
    assert_statistics_for(bn, next_bn, out, stats, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_head_reduces_the_statistics_of_the_next_stack_s_input(triton_backend, dtype):
    fused, ref = (m.to(dtype) for m in stack_head_pair(5, 3, merged=True))
    h, x = torch.randn(2, 5, 3, 4, dtype=dtype), torch.randn(2, 5, 3, 4, dtype=dtype)
    bn, next_bn = next_batch_norm(5, dtype)
    model = fused.model
    features = model.features[0][1]
    preds, x_next, stats = fasthg.ops.head.head(
        h, x, features.conv, features.bn, model.outs[0].conv, model.merge_features[0].conv.conv,
        model.merge_preds[0].conv.conv, True, 0.1, dtype, next_bn)
    ref_preds, ref_x_next = ref(h, x)
    assert_close(preds, ref_preds, "preds"), assert_close(x_next, ref_x_next, "x_next")
    assert_statistics_for(bn, next_bn, x_next, stats, dtype)


def test_residual_fed_its_input_s_statistics_matches_the_reference(triton_backend):
    """max-pool -> Residual with the pool's statistics: values, every gradient and every buffer (bn1's
    running statistics moved by the pool's epilogue, once) as the reference's pool -> Residual."""
    fused, ref = pair(lambda: fasthg.Residual(4, 6), lambda: reference.Residual(4, 6))
    x = torch.randn(2, 4, 6, 8, dtype=torch.float64)
    x_fused, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    pooled, stats = fasthg.ops.max_pool2x2(x_fused, fused.input_batch_norm())
    out = fused(pooled, stats)
    ref_out = ref(torch.nn.functional.max_pool2d(x_ref, 2))
    assert_close(out, ref_out, "out")
    grad = torch.randn_like(ref_out)
    out.backward(grad), ref_out.backward(grad)
    assert_close(x_fused.grad, x_ref.grad, "grad x")
    grads = [(name, p.grad, q.grad) for (name, p), (_, q) in zip(fused.named_parameters(), ref.named_parameters())
             if q.grad is not None]
    # conv biases feeding train-mode BNs have zero gradients in exact arithmetic: judged on the others' scale
    scale = max(float(expected.abs().max()) for _, _, expected in grads)
    for name, got, expected in grads:
        assert_close(got, expected, f"grad {name}", scale=scale)
    assert_buffers_close(fused, ref)


def launches_of(step):
    """The Triton launches ``step()`` makes, recorded on the meta device with the GPU tiles, not run
    (each op's launches checked against its declared KERNEL_LAUNCHES)."""
    recorder = LaunchRecorder()
    with registry.emulating(90), recorder:
        step()
    return recorder.launches


def kernels(launches, name, **flags):
    """How many of ``launches`` ran kernel ``name`` with these constexpr flags."""
    return sum(launch.kernel == name and all(launch.arguments[k] == v for k, v in flags.items()) for launch in launches)


def test_no_statistics_pass_inside_an_hourglass():
    """Only up1 reduces its input's statistics (the Hourglass is alone: nothing wrote x for it)."""
    with torch.device("meta"):
        model, x = fasthg.Hourglass(4, 16), torch.empty(2, 16, 32, 32)
    launches = launches_of(lambda: model(x))
    assert kernels(launches, "channel_stats_kernel") == 1
    assert kernels(launches, "max_pool2x2_forward_kernel", STATS=True) == 4  # for each level's low1
    assert kernels(launches, "upsample_add_forward_kernel") == 0  # up1 adds the inner branch in its epilogue
    assert kernels(launches, "conv_forward_kernel", ADD_UPSAMPLED=True, STATS=True) == 3  # for the outer levels' low3


def test_no_statistics_pass_inside_a_posenet_but_after_the_stem():
    """Every tensor a Residual normalises comes with its statistics from the op that wrote it, but
    the stem's output (PyTorch's conv-BN-ReLU)."""
    nstack = 3
    with torch.device("meta"):
        model, images = fasthg.PoseNet(nstack, 16, 4), torch.empty(2, 128, 128, 3)
    launches = launches_of(lambda: model(images))
    assert kernels(launches, "channel_stats_kernel") == 1
    assert kernels(launches, "max_pool2x2_forward_kernel", STATS=False) == 0
    assert kernels(launches, "max_pool2x2_forward_kernel", STATS=True) == 1 + 4 * nstack
    assert kernels(launches, "upsample_add_forward_kernel", STATS=False) == 0
    # the Residuals after the stem's pool, each level's low1 and up1 (with the upsampled inner branch),
    # the innermost low2; the heads' merges
    producers = 2 + 9 * nstack + nstack - 1
    assert kernels(launches, "conv_forward_kernel", STATS=True, HAS_RESIDUAL=True) + \
        kernels(launches, "conv_forward_kernel", STATS=True, HAS_SKIP=True, HAS_RESIDUAL=False) == producers
    model.eval()
    with torch.no_grad():
        launches = launches_of(lambda: model(images))
    assert kernels(launches, "channel_stats_kernel") == 0 and kernels(launches, "max_pool2x2_forward_kernel", STATS=True) == 0


def test_opcheck_residual_forward_given_and_giving_statistics(triton_backend):
    fused, _ = pair(lambda: fasthg.Residual(3, 4), lambda: reference.Residual(3, 4))
    fused = fused.float()
    with torch.no_grad():
        x = torch.randn(2, 3, 4, 5)
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        # Autograd comes from ResidualFunction (the op mutates running statistics): no-grad inputs.
        args = (*residual_forward_args(fused, x, True), torch.cat([mean, var]), torch.empty(8), torch.randn(4),
                torch.rand(4) + 0.5, 0.2)
    torch.library.opcheck(torch.ops.fasthg.residual_forward.default, args)


def test_opcheck_head_forward_giving_statistics(triton_backend):
    model = stack_head_pair(5, 3, merged=True)[0].float().model
    features = model.features[0][1]
    conv, bn, outs = features.conv, features.bn, model.outs[0].conv
    mf, mp = model.merge_features[0].conv.conv, model.merge_preds[0].conv.conv
    with torch.no_grad():
        args = (torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4), conv.weight, conv.bias, bn.weight, bn.bias,
                bn.running_mean.clone(), bn.running_var.clone(), outs.weight, outs.bias, mf.weight, mf.bias,
                mp.weight, mp.bias, True, 0.1, 1e-5, torch.empty(10), torch.randn(5), torch.rand(5) + 0.5, 0.2)
        args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
    torch.library.opcheck(torch.ops.fasthg.head_forward.default, args)


def test_pytorch_path_leaves_the_statistics_to_the_consumer(torch_backend):
    """Off the fused path there is no epilogue to reduce them in: stats None, the value unchanged."""
    torch.manual_seed(0)
    _, next_bn = next_batch_norm(4, torch.float32)
    x, low = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 3)
    residual = fasthg.Residual(4, 4)
    for call, plain in [(lambda: fasthg.ops.max_pool2x2(x, next_bn), lambda: fasthg.ops.max_pool2x2(x)),
                        (lambda: fasthg.ops.upsample_add(low, x, next_bn), lambda: fasthg.ops.upsample_add(low, x)),
                        (lambda: residual(x, next_bn=next_bn), lambda: residual(x))]:
        out, stats = call()
        assert stats is None
        assert_close(out, plain(), "out", rtol=0, atol=0)


@pytest.mark.parametrize("call, error, match", [
    (lambda x, low, r: fasthg.ops.max_pool2x2(x, (x, x, 0.1)), TypeError, "next_bn: expected None or a fasthg.ops.statistics.NextBatchNorm, got tuple"),
    (lambda x, low, r: fasthg.ops.upsample_add(low, x, NextBatchNorm(torch.zeros(3), torch.ones(4), 0.1)), ValueError,
     r"next_bn: expected running_mean of shape \(4,\), one per output channel, got \(3,\)"),
    (lambda x, low, r: r(x, next_bn=NextBatchNorm(torch.zeros(4), torch.ones(5), 0.1)), ValueError,
     r"next_bn: expected running_var of shape \(4,\)"),
    (lambda x, low, r: r(x, torch.zeros(4)), ValueError, r"x_stats: expected shape \(8,\), the mean then the biased variance"),
    (lambda x, low, r: r(x, [0.0] * 8), TypeError, "x_stats: expected None or a torch.Tensor, got list"),
])
def test_bad_statistics_arguments(torch_backend, call, error, match):
    x, low = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 3)
    with pytest.raises(error, match=match):
        call(x, low, fasthg.Residual(4, 4))


def test_a_training_step_launches_nothing_for_the_handed_statistics():
    """Statistics are a buffer the producer fills, not an output: autograd materialises no zero
    gradient for them (a fill per producer), so the step's launches drop by the passes saved."""
    with torch.device("meta"):
        model, images = fasthg.PoseNet(2, 16, 4), torch.empty(2, 128, 128, 3)
    step = lambda: model(images).sum().backward()  # noqa: E731
    with registry.emulating(90):
        step()  # the first step allocates the arrival counters (one zeros) as a process does once
    recorder = LaunchRecorder()
    with registry.emulating(90), recorder:
        step()
    # autograd's materialised gradients are aten ops of their own, outside any fasthg op
    fills = [kernel.label for kernel in recorder.kernels
             if kernel.op == kernel.kernel and kernel.kernel in ("aten::fill_", "aten::zero_", "aten::zeros")]
    assert fills == [], fills
