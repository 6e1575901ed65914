"""fasthg.Residual (fused BN-ReLU-conv kernels, in the interpreter) against fasthg.reference.Residual."""
import math

import pytest
import torch

import fasthg
from bench.counting import SavedActivations
from fasthg import reference
from fasthg.accuracy import relative_error
from fasthg.kernels import registry
from fasthg.ops import conv_launchers, launch
from harness import assert_as_accurate_as_eager, assert_buffers_close, assert_close
from launch_counter import LaunchCounter
from opinfo import residual_forward_args

# (in, out, N, H, W): in == out and in != out, odd channel counts, batch 1, tiny and non-square maps.
SHAPES = [(6, 6, 2, 5, 7), (5, 8, 1, 3, 4), (3, 10, 2, 1, 6)]
# Conv biases followed by training-mode BN have a zero gradient in exact arithmetic: rounding noise.
ZERO_IN_EXACT_ARITHMETIC = ("conv1.conv.bias", "conv2.conv.bias")


def make_pair(inp, out, dtype=torch.float64, seed=0):
    """A reference Residual with non-trivial parameters and running statistics, and a fused copy."""
    torch.manual_seed(seed)
    ref = reference.Residual(inp, out)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if "weight" in name else 0.2) + (1.0 if name.endswith("bn1.weight") else 0.0))
        for bn in (ref.bn1, ref.bn2, ref.bn3):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    fused = fasthg.Residual(inp, out)
    fused.load_state_dict(ref.state_dict())
    return ref.to(dtype), fused.to(dtype)


def run(module, x, grad_out):
    x = x.detach().clone().requires_grad_()
    out = module(x)
    out.backward(grad_out)
    grads = {name: p.grad for name, p in module.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.fixture(params=[registry.INTERPRETER, 80], ids=["interpreter-tiles", "sm80-tiles"])
def tiles(request):
    """Runs the kernels with the interpreter's large tiles and with the GPU's (other edges, more programs)."""
    with registry.emulating(request.param):
        yield


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_fp64_matches_reference(triton_backend, tiles, shape, training, channels_last):
    inp, out_dim, n, h, w = shape
    ref, fused = make_pair(inp, out_dim)
    ref.train(training), fused.train(training)
    x = torch.randn(n, inp, h, w, dtype=torch.float64) * 2 + 0.5
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    grad_out = torch.randn(n, out_dim, h, w, dtype=torch.float64)
    ref_out, ref_dx, ref_grads = run(ref, x, grad_out)
    out, dx, grads = run(fused, x, grad_out)
    assert_close(out, ref_out, "output", rtol=1e-9, atol=1e-9)
    assert_close(dx, ref_dx, "grad x", rtol=1e-9, atol=1e-9)
    assert set(grads) == set(ref_grads), f"parameters with gradients differ: {set(grads) ^ set(ref_grads)}"
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, ref_grad in ref_grads.items():
        if training and name in ZERO_IN_EXACT_ARITHMETIC:
            assert float(grads[name].abs().max()) <= 1e-9 * scale, f"grad {name} should be rounding noise"
            continue
        assert_close(grads[name], ref_grad, f"grad {name}", rtol=1e-9, atol=1e-9)
    assert_buffers_close(fused, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_low_precision_as_accurate_as_eager(triton_backend, tiles, dtype, training):
    inp, out_dim, n, h, w = 5, 8, 2, 5, 6
    exact_ref, _ = make_pair(inp, out_dim, torch.float64)
    eager_ref, fused = make_pair(inp, out_dim, dtype)
    for module in (exact_ref, eager_ref, fused):
        module.train(training)
    x = torch.randn(n, inp, h, w, dtype=torch.float64) * 2 + 0.5
    grad_out = torch.randn(n, out_dim, h, w, dtype=torch.float64)
    exact = run(exact_ref, x, grad_out)
    eager = run(eager_ref, x.to(dtype), grad_out.to(dtype))
    ours = run(fused, x.to(dtype), grad_out.to(dtype))
    assert ours[0].dtype == dtype
    assert_as_accurate_as_eager(ours[0], eager[0], exact[0], "output")
    assert_as_accurate_as_eager(ours[1], eager[1], exact[1], "grad x")
    scale = max(float(g.abs().max()) for g in exact[2].values())
    # A parameter's gradient sums n*h*w rows of rounded terms: its rounding error grows like
    # sqrt(rows) ulps, and eager's can be smaller by luck (its order of summation differs).
    summed_ulps = math.ceil(math.sqrt(n * h * w))
    for name, exact_grad in exact[2].items():
        if training and name in ZERO_IN_EXACT_ARITHMETIC:
            # Judged on the scale of the other gradients, as eager's own noise is.
            noise = float(ours[2][name].double().abs().max()) / scale
            assert noise <= 3 * max(float(eager[2][name].double().abs().max()) / scale, torch.finfo(dtype).eps), name
            continue
        assert_as_accurate_as_eager(ours[2][name], eager[2][name], exact_grad, f"grad {name}", ulps=summed_ulps)


def test_running_statistics_update_like_batchnorm_over_steps(triton_backend):
    ref, fused = make_pair(4, 6)
    for module in (ref, fused):
        module.bn1.momentum = module.bn2.momentum = module.bn3.momentum = None  # cumulative average
    for step in range(3):
        x = torch.randn(2, 4, 3, 5, dtype=torch.float64) + step
        ref(x), fused(x)
    assert_buffers_close(fused, ref, rtol=1e-12, atol=1e-12)
    assert int(fused.bn3.num_batches_tracked) == 3


def test_identity_skip_layer_takes_no_part(triton_backend):
    _, fused = make_pair(6, 6)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    before = fused(x)
    with torch.no_grad():
        fused.skip_layer.conv.weight.fill_(1e3)
    after = fused(x)
    after.sum().backward()
    assert_close(after, before, "output")
    assert fused.skip_layer.conv.weight.grad is None and fused.skip_layer.conv.bias.grad is None


def test_large_mean_statistics_are_exact(triton_backend, tiles):
    # A channel with mean 1e4 and std 1: a plain fp32 sum of squares would lose the variance.
    # 4096 rows: 64 partial tiles with the GPU's, more than one step of the finishing loop.
    x = (torch.randn(4, 3, 32, 32, dtype=torch.float64) + 1e4).float().to(memory_format=torch.channels_last)
    mean, var = torch.empty(3), torch.empty(3)
    running_mean, running_var = torch.zeros(3), torch.ones(3)
    stats = conv_launchers.BatchStatistics(mean, var, running_mean, running_var)
    conv_launchers.channel_stats(x, stats, momentum=0.1)
    exact_var, exact_mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
    assert relative_error(var, exact_var) < 1e-4, f"variance {var.tolist()} vs fp64 {exact_var.tolist()}"
    assert relative_error(mean, exact_mean) < 1e-7
    unbiased = exact_var * x[:, 0].numel() / (x[:, 0].numel() - 1)
    assert_close(running_var, 0.9 + 0.1 * unbiased.float(), "running_var", dtype=torch.float32)


def test_fp32_partials_keep_the_variance_a_sum_of_squares_loses(triton_backend, monkeypatch):
    # fp32 tensors reduce in fp32 partials (centred moments, combined by Chan's formula). A mean of
    # 10^4 standard deviations over 16384 rows (256 row tiles of the GPU's 64, a tree of 3 levels):
    # what fp32 partials lose is each stored tile mean's rounding, about eps |mean| / (std sqrt(rows))
    # of the variance (helpers._combine_moments); the fp32 sum of squares loses all of it.
    dtypes = []
    partials = launch.partials
    monkeypatch.setattr(launch, "partials", lambda *args: dtypes.append(args[-1]) or partials(*args))
    torch.manual_seed(0)
    x = (torch.randn(4, 5, 64, 64, dtype=torch.float64) + 1e4).float().to(memory_format=torch.channels_last)
    stats = conv_launchers.BatchStatistics(torch.empty(5), torch.empty(5), torch.zeros(5), torch.ones(5))
    with registry.emulating(80):
        conv_launchers.channel_stats(x, stats, momentum=0.1)
    assert dtypes == [torch.float32]
    rows = x[:, 0].numel()
    exact_var, exact_mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
    bound = 4 * torch.finfo(torch.float32).eps * 1e4 / math.sqrt(rows)  # 3.7e-5
    sum_of_squares = (x * x).sum(dim=(0, 2, 3)) / rows - (x.sum(dim=(0, 2, 3)) / rows) ** 2
    assert relative_error(sum_of_squares, exact_var) > 100 * bound  # the bound tells the formulas apart
    assert relative_error(stats.var, exact_var) < bound, f"variance {stats.var.tolist()} vs fp64 {exact_var.tolist()}"
    assert relative_error(stats.mean, exact_mean) < 1e-7


def test_large_mean_conv_epilogue_statistics(triton_backend):
    # Statistics reduced in conv1's epilogue feed bn2: a large bias gives y1 a mean of 1e4.
    ref, fused = make_pair(4, 6, torch.float32)
    with torch.no_grad():
        for module in (ref, fused):
            module.conv1.conv.bias.fill_(1e4)
    x = torch.randn(2, 4, 8, 8)
    out, ref_out = fused(x), ref(x)
    assert_close(fused.bn2.running_var, ref.bn2.running_var, "bn2.running_var", rtol=1e-4, atol=1e-4)
    assert_close(out, ref_out, "output", rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck(triton_backend, training):
    _, fused = make_pair(3, 4)
    fused.train(training)
    x = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    # Fast mode checks random projections of the Jacobian: a few forwards instead of one per input.
    assert torch.autograd.gradcheck(fused, (x,), fast_mode=True)


def test_opcheck_forward(triton_backend):
    _, fused = make_pair(3, 4, torch.float32)
    with torch.no_grad():
        args = residual_forward_args(fused, torch.randn(2, 3, 4, 4), True)
    # Autograd comes from ResidualFunction (the op mutates running stats): opcheck sees no-grad inputs.
    torch.library.opcheck(torch.ops.fasthg.residual_forward.default, args)


def test_opcheck_backward(triton_backend):
    _, fused = make_pair(3, 4, torch.float32)
    with torch.no_grad():
        x = torch.randn(2, 3, 4, 4)
        forward_args = residual_forward_args(fused, x, True)
        out, y1, y2, x_stats, stats = torch.ops.fasthg.residual_forward(*forward_args)
        args = (torch.randn_like(out), x, y1, y2, x_stats, stats, forward_args[1], forward_args[2], forward_args[9],
                forward_args[11], True, 1e-5)
    torch.library.opcheck(torch.ops.fasthg.residual_backward.default, args)


def saved_activation_bytes(module, x):
    """Bytes of the activations autograd keeps for backward (parameters excluded), each storage once,
    as the benchmark counts them: a tensor saved by two ops through an alias (a pass-through of a
    module's input, tests/test_gradient_sums.py) is kept once."""
    saved = SavedActivations(excluded=list(module.parameters()))
    with saved:
        module(x)
    return saved.bytes


@pytest.mark.parametrize("inp, out", [(256, 256), (128, 256)])
def test_saves_at_most_055_of_the_reference_activations(inp, out):
    with torch.device("meta"):
        ref, fused = reference.Residual(inp, out), fasthg.Residual(inp, out)
        x = torch.empty(16, inp, 64, 64, requires_grad=True)
    ratio = saved_activation_bytes(fused, x) / saved_activation_bytes(ref, x)
    assert ratio <= 0.55, f"fused Residual saves {ratio:.3f}x the reference's activations"


@pytest.fixture
def triton_launches(monkeypatch):
    """The names of the kernels the Residual's launchers start, in order."""
    names = []
    original = conv_launchers._launch
    monkeypatch.setattr(conv_launchers, "_launch", lambda *a, **k: (names.append(a[0].name), original(*a, **k)))
    return names


def test_launches_per_training_forward(triton_backend, triton_launches):
    _, fused = make_pair(5, 8, torch.float32)
    x = torch.randn(2, 5, 4, 4).to(memory_format=torch.channels_last)
    with LaunchCounter() as torch_ops:
        fused(x)
    assert triton_launches == ["channel_stats", "conv_forward", "conv_forward", "conv_forward"]
    assert torch_ops.ops == ["_foreach_add_"], torch_ops.ops  # num_batches_tracked of the three BNs
    assert len(triton_launches) + len(torch_ops.ops) <= 5


def test_inference_forward_is_three_launches_and_nothing_else(triton_backend, triton_launches):
    _, fused = make_pair(5, 8, torch.float32)
    fused.eval()
    x = torch.randn(2, 5, 4, 4).to(memory_format=torch.channels_last)
    with torch.no_grad(), LaunchCounter() as torch_ops:
        fused(x)
    assert triton_launches == ["conv_forward"] * 3 and torch_ops.ops == [], (triton_launches, torch_ops.ops)


def test_eval_backward_after_several_eval_forwards(triton_backend):
    """Eval under autograd keeps a copy of the running statistics for the backward: a second
    forward (which may update the buffers, as far as autograd knows) must not spoil the first's."""
    ref, fused = make_pair(5, 8)
    ref.eval(), fused.eval()
    xs = [torch.randn(2, 5, 3, 4, dtype=torch.float64) for _ in range(2)]
    inputs = {}
    for name, module in (("ref", ref), ("fused", fused)):
        inputs[name] = [x.clone().requires_grad_() for x in xs]
        sum(module(x).square().sum() for x in inputs[name]).backward()
    for got, expected in zip(inputs["fused"], inputs["ref"]):
        assert_close(got.grad, expected.grad, "dx", rtol=1e-10, atol=1e-10)
    for (name, p), (_, ref_p) in zip(fused.named_parameters(), ref.named_parameters()):
        if ref_p.grad is not None:
            assert_close(p.grad, ref_p.grad, f"grad {name}", rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x, error, match", [
    (torch.randn(2, 5, 4), ValueError, r"x: expected a 4-D tensor \(N, C, H, W\), got shape \(2, 5, 4\)"),
    (torch.randn(2, 4, 4, 4), ValueError, r"x: expected 5 channels \(dim 1\), got shape \(2, 4, 4, 4\)"),
    (torch.ones(2, 5, 4, 4, dtype=torch.int32), TypeError, r"x: expected dtype in \(float16, bfloat16, float32, float64\)"),
    (torch.randn(1, 5, 1, 1), ValueError, r"x: batch statistics need more than one value per channel"),
    ("tensor", TypeError, "x: expected a torch.Tensor, got str"),
])
def test_bad_input(triton_backend, x, error, match):
    with pytest.raises(error, match=match):
        fasthg.Residual(5, 8)(x)


def test_tensors_beyond_int32_offsets_rejected_before_any_kernel(triton_backend):
    with torch.device("meta"):
        module = fasthg.Residual(64, 128)
        x = torch.empty(2**15, 64, 32, 32)
    with pytest.raises(ValueError, match=r"x: expected fewer than 2\^31 elements"):
        module(x)


def test_mixed_devices_rejected(triton_backend):
    with torch.device("meta"):
        module = fasthg.Residual(5, 8)
    with pytest.raises(ValueError, match="weight: expected a tensor on cpu like x, got meta"):
        module(torch.randn(2, 5, 4, 4))


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format], ids=["channels-last", "contiguous"])
def test_weights_in_either_layout(triton_backend, layout):
    # fasthg.Residual keeps its 3x3 weight channels_last (vector loads); a model moved to another
    # layout still computes the same, and its weight gradients come back in the weights' layout,
    # which autograd then keeps as they are (no copy into .grad).
    ref, fused = make_pair(5, 8)
    assert fused.conv2.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not fused.conv2.conv.weight.is_contiguous()
    fused = fused.to(memory_format=layout)
    assert fused.conv2.conv.weight.is_contiguous(memory_format=layout)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    grad_out = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    ref_out, ref_dx, ref_grads = run(ref, x, grad_out)
    out, dx, grads = run(fused, x, grad_out)
    assert_close(out, ref_out, "output", rtol=1e-9, atol=1e-9)
    assert_close(dx, ref_dx, "grad x", rtol=1e-9, atol=1e-9)
    for name in ("conv1.conv.weight", "conv2.conv.weight", "conv3.conv.weight", "skip_layer.conv.weight"):
        assert_close(grads[name], ref_grads[name], f"grad {name}", rtol=1e-9, atol=1e-9)
        assert grads[name].stride() == fused.get_parameter(name).stride(), f"{name}'s gradient has another layout"
