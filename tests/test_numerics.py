"""Numerics on every registry entry (tests/opinfo.py): non-finite values propagate as in the
reference, batch statistics survive a large mean, values near the fp16 range neither overflow
early nor lose accuracy, and an empty batch is rejected before any kernel runs.

PoseNet (20 s a run in the interpreter) is left to its parts here: Residual, the stack head,
Hourglass, max_pool2x2 and upsample_add.
"""
import pytest
import torch

import fasthg
from opinfo import OPS, Sample, bind, draw_sample, grad_outputs, leaves, run
from harness import assert_as_accurate_as_eager
from parity import check_parity, compare_exact, rounded

AFFORDABLE = [info for info in OPS if info.cost <= 10]
MODES = [(info, training) for info in AFFORDABLE for training in ((True, False) if "training" in info.example else (None,))]
MODE_IDS = [f"{info}-{'train' if t else 'eval' if t is False else 'fn'}" for info, t in MODES]


def _sizes(info, training):
    return info.example if training is None else {**info.example, "training": training}


def _with_first(sample, transform):
    """The sample with ``transform`` applied to its first float input."""
    tensors = dict(sample.tensors)
    name = next(k for k, t in tensors.items() if t.is_floating_point() and k not in sample.constant)
    tensors[name] = transform(tensors[name].clone())
    return Sample(tensors, sample.options, sample.constant)


def _put(value):
    def transform(t):
        t.view(-1)[t.numel() // 2] = value
        return t
    return transform


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy (the interpreter) noting the non-finite arithmetic
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("info, training", MODES, ids=MODE_IDS)
def test_non_finite_inputs_propagate_like_the_reference(triton_backend, info, training, value):
    # fp64, one non-finite element in the middle of the first input: outputs, gradients and running
    # statistics must be NaN and +-inf exactly where the reference's are (assert_close checks the
    # NaN pattern; an inf compares equal only to the same inf), and equal elsewhere.
    sizes = _sizes(info, training)
    sample = _with_first(draw_sample(info, sizes), _put(value))
    ours = run(bind(info, sizes, "fused", torch.float64), leaves(sample, torch.float64), "channels_last")
    theirs = run(bind(info, sizes, "reference", torch.float64), leaves(sample, torch.float64))
    if value != value and info.propagates_nan:  # NaN reaches an output (an inf may lose to a max or be normalised away)
        assert any(o.isnan().any() for o in theirs.outputs), "the reference should propagate NaN"
    compare_exact(info, ours, theirs)


@pytest.mark.parametrize("info", [info for info in AFFORDABLE if info.batch_statistics], ids=str)
def test_batch_statistics_of_a_large_mean_as_accurate_as_eager(triton_backend, info):
    # Mean 1e4, std 1 in fp32: a plain fp32 sum of squares would lose the variance. Judged: the
    # statistics of every BN the large mean reaches (running mean > 100 after one step of
    # momentum 0.1), the outputs and the input's gradient, against eager fp32 as the bar. BNs after
    # a normalisation see unit-scale values; their fp32 error is set by where the rounded mean falls.
    sizes = {**info.example, "training": True}
    sample = _with_first(draw_sample(info, sizes), lambda t: t / t.std() + 1e4)
    ours = run(bind(info, sizes, "fused", torch.float32), leaves(sample, torch.float32), "channels_last")
    grads_out = grad_outputs(ours.outputs)
    exact = run(bind(info, sizes, "reference", torch.float64), leaves(rounded(sample, torch.float32), torch.float64),
                grads_out=tuple(g.double() for g in grads_out))
    eager = run(bind(info, sizes, "reference", torch.float32), leaves(sample, torch.float32), grads_out=grads_out)
    large = [name for name, t in exact.buffers.items() if name.endswith("running_mean") and float(t.abs().max()) > 100]
    assert large, "no BN saw the large mean"
    for name in large + [n.replace("running_mean", "running_var") for n in large]:
        assert_as_accurate_as_eager(ours.buffers[name], eager.buffers[name], exact.buffers[name], name, ulps=4)
    for i, (got, theirs, want) in enumerate(zip(ours.outputs, eager.outputs, exact.outputs)):
        assert_as_accurate_as_eager(got, theirs, want, f"output {i}", ulps=4)
    first = next(iter(sample.tensors))
    assert_as_accurate_as_eager(ours.grads[first], eager.grads[first], exact.grads[first], f"grad {first}", ulps=4)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # weight gradients beyond 65504
@pytest.mark.parametrize("info", [info for info in AFFORDABLE if torch.float16 in info.interpreter_dtypes], ids=str)
def test_values_near_the_fp16_range(triton_backend, info):
    # |x| up to 2e4 (fp16 max 65504): their squares overflow fp16, so must any statistic kept in
    # fp16. As accurate as eager fp16, and finite wherever the exact result is well inside the range.
    sizes = {**info.example, "training": True} if "training" in info.example else info.example
    sample = draw_sample(info, sizes)
    sample.tensors = {k: t / t.abs().max() * 2e4 if t.is_floating_point() else t for k, t in sample.tensors.items()}
    check_parity(info, sizes, sample, torch.float16, "channels_last")
    ours = run(bind(info, sizes, "fused", torch.float16), leaves(sample, torch.float16))
    grads_out = tuple(g.double() for g in grad_outputs(ours.outputs))
    exact = run(bind(info, sizes, "reference", torch.float64), leaves(sample, torch.float64), grads_out=grads_out)
    pairs = [*zip(ours.outputs, exact.outputs), *((ours.grads[k], exact.grads[k]) for k in exact.grads)]
    for i, (got, want) in enumerate(pairs):
        representable = want.abs() < torch.finfo(torch.float16).max / 2
        assert got[representable].isfinite().all(), f"{info.name}: result {i} overflowed where the exact one is < 32752"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # the interpreter's, meant here
@pytest.mark.parametrize("info", [info for info in AFFORDABLE if not (info.batch_statistics or info.sums)], ids=str)
def test_overflow_in_fp16_matches_the_reference(triton_backend, info):
    # Inputs at 6e4: where eager fp16 overflows to inf the op must too, and be bit-equal elsewhere.
    sample = draw_sample(info, info.example)
    sample.tensors = {k: (t.sign() * 6e4).to(torch.float16) for k, t in sample.tensors.items()}
    ours = run(bind(info, info.example, "fused", torch.float16), leaves(sample, torch.float16), "channels_last")
    eager = run(bind(info, info.example, "reference", torch.float16), leaves(sample, torch.float16))
    for i, (got, want) in enumerate(zip(ours.outputs, eager.outputs)):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=f"{info.name}: output {i}")


@pytest.mark.parametrize("info", [info for info in AFFORDABLE if info.public and "n" in info.example], ids=str)
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_empty_batch_rejected(info, backend):
    sizes = {**info.example, "n": 0}
    bound = bind(info, sizes, "fused", torch.float32)
    with fasthg.backend(backend), pytest.raises(ValueError, match=r"expected a non-empty tensor, got shape \(0,"):
        bound.fn(*leaves(draw_sample(info, sizes), torch.float32).values())


@pytest.mark.parametrize("info", [info for info in AFFORDABLE if info.batch_statistics and "h" in info.example], ids=str)
def test_batch_statistics_over_two_values(triton_backend, info):
    # The fewest values train-mode BN accepts: batch 2 of 1x1 maps (for the Hourglass, its innermost level).
    sizes = {**info.example, "n": 2, "training": True, "h": 1 << info.example.get("depth", 0),
             "w": 1 << info.example.get("depth", 0)}
    check_parity(info, sizes, draw_sample(info, sizes), torch.float64, "channels_last")
