"""Judging one call of a registry entry (tests/opinfo.py) against its reference.

* fp64 is compared tightly with the fp64 reference: outputs elementwise, gradients on the scale
  of all the gradients (some are zero in exact arithmetic), buffers (running statistics) too.
* fp32/fp16/bf16 are judged as FlashAttention's tests do: the distance from the fp64 reference,
  run on the same rounded inputs, may be at most ``info.eager_factor`` times that of eager
  PyTorch in the same dtype, plus a few ulps. Eager's error is the worst of equally valid runs:
  NCHW, channels_last, and the batch in reverse order (another summation order of BN's statistics).
* Gradients are judged on the scale of all the gradients (docs/without_a_gpu.md): some are zero in exact
  arithmetic (a conv bias before a train-mode BN), others sums of few terms that nearly cancel
  (a bias over a 2x2 map, conv1's weight with one input channel), and their own relative error
  is then any implementation's noise, eager's luck included.
* Mask flips: in fp16/bf16 a pre-activation within rounding distance of zero may land on either
  side of a ReLU, and that element's gradient is then off by its whole value (in training, through
  BN's sums, every element a little). For ops with ReLUs (``info.relu_masks``) the gradients are
  therefore judged against an fp64 reference that holds the values fasthg's kernels store in the
  low dtype (:func:`fasthg.accuracy.round_stored_tensors`: value only, gradient unchanged): it
  decides nearly every ReLU on the value the kernels decide it on. Eager PyTorch rounds elsewhere
  and flips other ReLUs: that is part of its error, the bar. Where a ReLU input of that reference
  still lies within FLIP_ULPS ulps (at its tensor's scale) of zero, the kernels may decide it the
  other way (an fp16 Hourglass draw of small-integer values does): the gradients are then judged
  with a floor of FLIP_FLOOR_ULPS ulps instead of FLOOR_ULPS, a looser bound, never none. In fp16
  that still fails a 5% error (tests/test_stack_head.py); in bf16 (16 ulps = 12.5%) it cannot.
  Forward outputs and running statistics are judged against the plain fp64 reference.
"""
import torch

from fasthg.accuracy import FLOOR_ULPS, against_eager, magnitude
from harness import assert_close
from opinfo import Sample, bind, grad_outputs, leaves, run

FLIP_ULPS = 2
FLIP_FLOOR_ULPS = 16



def compare_exact(info, ours, theirs, tolerance=None):
    """fp64 against fp64: outputs elementwise, gradients on the scale of the whole set, buffers."""
    tolerance = info.fp64_tolerance if tolerance is None else tolerance
    assert len(ours.outputs) == len(theirs.outputs), f"{len(ours.outputs)} outputs, reference has {len(theirs.outputs)}"
    for i, (got, want) in enumerate(zip(ours.outputs, theirs.outputs)):
        assert got.dtype == want.dtype, f"output {i}: dtype {got.dtype} != reference's {want.dtype}"
        assert_close(got, want, f"output {i}", rtol=tolerance, atol=tolerance)
    assert set(ours.grads) == set(theirs.grads), f"gradients differ in which exist: {set(ours.grads) ^ set(theirs.grads)}"
    scale = magnitude(theirs.grads.values())
    for name, want in theirs.grads.items():
        assert_close(ours.grads[name], want, f"grad {name}", rtol=tolerance, atol=tolerance, scale=scale)
    for name, want in theirs.buffers.items():
        assert_close(ours.buffers[name], want, name, rtol=tolerance, atol=tolerance)


def _judge(name, got, eagers, exact, factor, scale=None, ulps=FLOOR_ULPS):
    judgement = against_eager(name, got, eagers, exact, factor, ulps, scale)
    assert judgement.passed, str(judgement)


def compare_with_eager(info, ours, eagers, exact, flip_prone=False):
    """A low-precision result against the fp64 one, relative to eager PyTorch's error in that dtype.

    ``flip_prone``: a ReLU of the reference is decided within FLIP_ULPS of zero, and gradients get
    the looser floor (see the module docstring).
    """
    gradient_ulps = FLIP_FLOOR_ULPS if flip_prone else FLOOR_ULPS
    factor = info.eager_factor
    for i, got in enumerate(ours.outputs):
        theirs, want = [e.outputs[i] for e in eagers], exact.outputs[i]
        assert got.dtype == theirs[0].dtype, f"output {i}: dtype {got.dtype} != reference's {theirs[0].dtype}"
        assert got.shape == want.shape, f"output {i}: shape {tuple(got.shape)} != reference's {tuple(want.shape)}"
        _judge(f"output {i}", got, theirs, want, factor)
    assert set(ours.grads) == set(exact.grads), f"gradients differ in which exist: {set(ours.grads) ^ set(exact.grads)}"
    scale = magnitude(exact.grads.values()) or 1.0  # all-zero exact gradients: judge absolute errors
    for name, want in exact.grads.items():
        got, theirs = ours.grads[name], [e.grads[name] for e in eagers]
        assert got.dtype == theirs[0].dtype, f"grad {name}: dtype {got.dtype} != reference's {theirs[0].dtype}"
        _judge(f"grad {name}", got, theirs, want, factor, scale, gradient_ulps)
    for name, want in exact.buffers.items():
        theirs = [e.buffers[name] for e in eagers]
        if want.is_floating_point():
            _judge(name, ours.buffers[name], theirs, want, factor)
        else:
            assert torch.equal(ours.buffers[name], want), f"{name}: {ours.buffers[name]} != {want}"


class relu_margin:
    """Within the block, records whether any ReLU of ``module`` gets an input within FLIP_ULPS ulps
    of ``dtype`` (relative to that input's largest magnitude) of zero."""

    def __init__(self, module, dtype):
        self.relus = [m for m in module.modules() if isinstance(m, torch.nn.ReLU)] if module is not None else []
        self.margin = FLIP_ULPS * torch.finfo(dtype).eps
        self.flip_prone = False

    def _hook(self, module, inputs, output):
        (x,) = inputs
        self.flip_prone |= bool((x.abs() <= self.margin * x.abs().max()).any())

    def __enter__(self):
        self.handles = [relu.register_forward_hook(self._hook) for relu in self.relus]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def rounded(sample, dtype):
    """The sample with float tensors rounded to ``dtype`` and held in fp64: the exact reference's inputs."""
    tensors = {k: t.to(dtype).double() if t.is_floating_point() else t for k, t in sample.tensors.items()}
    return Sample(tensors, sample.options, sample.constant)


def _eager_on_reversed_batch(info, sizes, sample, dtype, backward, grads_out):
    """Eager PyTorch on the batch in reverse order, results put back in order: the same answer
    summed in another order (BN's statistics over 2 values show how much that alone moves it)."""
    flip = lambda t: t.flip(0)  # noqa: E731
    reversed_sample = Sample({k: flip(t) for k, t in sample.tensors.items()}, sample.options, sample.constant)
    result = run(bind(info, sizes, "reference", dtype, sample.options), leaves(reversed_sample, dtype, backward),
                 "contiguous", backward, tuple(flip(g) for g in grads_out))
    result.outputs = tuple(flip(o) for o in result.outputs)
    result.grads = {k: flip(g) if k in sample.tensors else g for k, g in result.grads.items()}
    return result


def check_parity(info, sizes, sample, dtype, layout="contiguous"):
    """Forward and backward of the fused entry in ``dtype`` and ``layout`` against its reference."""
    backward = info.differentiable
    ours = run(bind(info, sizes, "fused", dtype, sample.options), leaves(sample, dtype, backward), layout, backward)
    grads_out = grad_outputs(ours.outputs)

    def exact_run(storage=None):
        reference = bind(info, sizes, "reference", torch.float64, sample.options, storage)
        with relu_margin(reference.module, dtype) as margin:
            result = run(reference, leaves(rounded(sample, dtype), torch.float64, backward), "contiguous", backward,
                         tuple(g.double() for g in grads_out))
        return result, margin.flip_prone

    exact, _ = exact_run()
    if dtype == torch.float64:
        compare_exact(info, ours, exact)
        return
    eagers = [run(bind(info, sizes, "reference", dtype, sample.options), leaves(sample, dtype, backward),
                  eager_layout, backward, grads_out) for eager_layout in ("contiguous", "channels_last")]
    if info.batch_first:
        eagers.append(_eager_on_reversed_batch(info, sizes, sample, dtype, backward, grads_out))
    flip_prone = False
    if info.relu_masks and dtype in (torch.float16, torch.bfloat16):
        # Gradients against the reference that stores what the kernels store (module docstring);
        # outputs and running statistics against the plain one.
        stored, flip_prone = exact_run(storage=dtype)
        exact.grads = stored.grads
    compare_with_eager(info, ours, eagers, exact, flip_prone)
