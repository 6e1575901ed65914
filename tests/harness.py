"""Comparison helpers and the per-dtype tolerance table every parity test uses.

Two ways of judging a result:

* :func:`assert_close` compares with an expected tensor computed in the same dtype, elementwise
  ``|a - e| <= atol * scale + rtol * |e|`` with ``scale = max |e|``: errors are judged on the
  scale of the whole tensor, so entries that are zero in exact arithmetic (rounding noise) do not
  demand an absolute precision no implementation has.
* :func:`assert_as_accurate_as_eager` judges a low-precision result the way FlashAttention's tests
  do: its distance from the fp64 answer may be at most ``EAGER_FACTOR`` times eager PyTorch's own
  distance in that dtype (plus a floor of a few ulps at the tensor's scale). The rule lives in
  :mod:`fasthg.accuracy`, which ``python -m fasthg.gpucheck`` judges a GPU's results by.

A failure says which tensor, by how much, and where the worst element is.
"""
import torch

from fasthg.accuracy import EAGER_FACTOR, against_eager

TOLERANCES = {  # dtype: (rtol, atol relative to the tensor's scale)
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


def _worst(diff):
    flat = int(diff.argmax())
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))


def assert_close(actual, expected, name="tensor", dtype=None, rtol=None, atol=None, scale=None):
    """Elementwise closeness at the tolerance of ``dtype`` (default: ``expected``'s dtype).

    ``scale`` (default max |expected|) is what atol is relative to: give the scale of a set of
    tensors to judge one whose exact value is zero (pure rounding noise) on the scale of the others.
    """
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    if not expected.is_floating_point():
        assert torch.equal(actual, expected), f"{name}: {actual.tolist()} != expected {expected.tolist()}"
        return
    default_rtol, default_atol = TOLERANCES[dtype or expected.dtype]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert torch.equal(a.isnan(), e.isnan()), f"{name}: NaN pattern differs ({int(a.isnan().sum())} vs {int(e.isnan().sum())})"
    a, e = a.nan_to_num(), e.nan_to_num()
    scale = (float(e.abs().max()) if e.numel() else 0.0) if scale is None else scale
    diff = (a - e).abs()
    excess = diff - (atol * scale + rtol * e.abs())
    if e.numel() and float(excess.max()) > 0:
        where = _worst(excess)
        raise AssertionError(
            f"{name}: max |diff| {float(diff.max()):.3e} (scale {scale:.3e}, rtol {rtol:g}, atol {atol:g}·scale); "
            f"worst at {where}: got {float(a[where]):.9g}, expected {float(e[where]):.9g}"
        )


def assert_buffers_close(module, reference, rtol=None, atol=None):
    """Every buffer of ``module`` (running statistics, step counters) against ``reference``'s, in order."""
    for (name, buffer), (_, expected) in zip(module.named_buffers(), reference.named_buffers()):
        assert_close(buffer, expected, name, rtol=rtol, atol=atol)


def step_counts(module):
    """{name: num_batches_tracked} of every BN in ``module``."""
    return {name: int(t) for name, t in module.named_buffers() if name.endswith("num_batches_tracked")}


def assert_as_accurate_as_eager(actual, eager, exact, name="tensor", factor=EAGER_FACTOR, ulps=1):
    """``actual`` is at most ``factor`` times as far from ``exact`` (fp64) as eager PyTorch's ``eager`` is,
    plus ``ulps`` units in the last place at the tensor's scale (eager can be exact by luck)."""
    judgement = against_eager(name, actual, [eager], exact, factor, ulps)
    assert judgement.passed, str(judgement)


def forward_backward(fn, inputs, grad_output=None, seed=0):
    """Runs ``fn(*inputs)`` and its backward with a fixed random output gradient.

    Returns (output, grads of every input that requires grad, grad_output).
    """
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in inputs]
    out = fn(*leaves)
    if grad_output is None:
        gen = torch.Generator().manual_seed(seed)
        grad_output = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
    tracked = [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad(out, tracked, grad_output) if tracked else ()
    return out, grads, grad_output


def check_parity(fn, reference, inputs, dtype, names=None):
    """Forward and backward of ``fn`` against ``reference`` on the same ``inputs``.

    fp64 is compared tightly. Lower precisions are judged against the fp64 reference, relative to
    eager PyTorch's own error in that dtype (``reference`` run on the low-precision inputs).
    ``inputs`` are given in fp64; floating tensors are cast to ``dtype``.
    """
    cast = [t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs]
    out, grads, grad_output = forward_backward(fn, cast)
    names = names or [f"grad[{i}]" for i in range(len(grads))]
    if dtype == torch.float64:
        ref_out, ref_grads, _ = forward_backward(reference, cast, grad_output)
        assert_close(out, ref_out, "output")
        for name, got, want in zip(names, grads, ref_grads):
            assert_close(got, want, name)
        return
    exact_out, exact_grads, _ = forward_backward(reference, inputs, grad_output.double())
    eager_out, eager_grads, _ = forward_backward(reference, cast, grad_output)
    assert_as_accurate_as_eager(out, eager_out, exact_out, "output")
    for name, got, eager, exact in zip(names, grads, eager_grads, exact_grads):
        assert_as_accurate_as_eager(got, eager, exact, name)
