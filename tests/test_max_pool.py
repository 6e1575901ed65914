import contextlib

import pytest
import torch
import torch.nn.functional as F

import fasthg
from bench.counting import LaunchRecorder
from harness import DTYPES, assert_close, check_parity

SHAPES = [(1, 1, 2, 2), (2, 3, 6, 10), (1, 67, 5, 7), (2, 130, 4, 4)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_max_pool2d(triton_backend, dtype, shape):
    x = torch.randn(shape, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    check_parity(fasthg.ops.max_pool2x2, lambda t: F.max_pool2d(t, 2), [x], dtype, ["grad_x"])


def _corners_pytorch_picks(x):
    """The corner (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of each 2x2 window
    where PyTorch's max_pool2d takes its maximum, from its own (flat, int64) indices."""
    _, flat = F.max_pool2d(x, 2, return_indices=True)
    row, column = flat // x.shape[3], flat % x.shape[3]
    return (2 * (row % 2) + column % 2).to(torch.int8)


INF, NAN = float("inf"), float("nan")
# 2x2 windows (row-major) and the corner PyTorch's max_pool2d takes the maximum at: ties go to the
# first, a NaN wins, and of several NaNs the last (both on CPU and CUDA: greater or NaN takes over)
WINDOWS = [
    ([1.0, 1.0, 1.0, 1.0], 0),  # all four equal
    ([0.0, 2.0, 2.0, 0.0], 1),  # two maxima
    ([-1.0, -3.0, 5.0, 5.0], 2),  # two maxima in the bottom row
    ([-INF, -INF, -INF, -INF], 0),
    ([0.0, NAN, 5.0, 1.0], 1),  # a NaN
    ([INF, 1.0, NAN, INF], 2),  # a NaN after an infinity
    ([NAN, 1.0, NAN, 2.0], 2),  # two NaNs
    ([NAN, NAN, NAN, NAN], 3),
    ([-2.0, -1.0, -3.0, 0.0], 3),
]


def _windows_side_by_side(windows, extra_column):
    """(1, 1, 2, 2 len(windows) + 1) holding the windows left to right, and a trailing odd column
    (``extra_column``) that no window covers."""
    corners = torch.tensor([window for window, _ in windows])  # (windows, 4)
    rows = corners.view(-1, 2, 2).permute(1, 0, 2).reshape(2, -1)
    return torch.cat([rows, torch.full((2, 1), extra_column)], dim=1)[None, None]


@pytest.mark.parametrize("arrangement", ["channels", "columns"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ties_and_nan_pick_the_window_position_pytorch_picks(triton_backend, dtype, arrangement):
    """Windows one per channel, or side by side in a row with a larger trailing odd column: the
    index the forward saves is the hand-computed corner and PyTorch's, and so is the gradient."""
    if arrangement == "channels":
        x = torch.tensor([window for window, _ in WINDOWS]).view(1, -1, 2, 2)
    else:
        x = _windows_side_by_side(WINDOWS, extra_column=100.0)
    x = x.to(dtype).to(memory_format=torch.channels_last).requires_grad_()
    out = fasthg.ops.max_pool2x2(x)
    (index,) = out.grad_fn.saved_tensors
    assert index.flatten().tolist() == [corner for _, corner in WINDOWS]
    assert torch.equal(index, _corners_pytorch_picks(x))
    assert_close(out, F.max_pool2d(x, 2), "out", rtol=0, atol=0)  # NaN where PyTorch's is
    grad = torch.arange(1.0, out.numel() + 1, dtype=dtype).view(out.shape)
    ours, = torch.autograd.grad(out, x, grad)
    theirs, = torch.autograd.grad(F.max_pool2d(x, 2), x, grad)
    assert_close(ours, theirs, "grad x", rtol=0, atol=0)
    assert int((ours != 0).sum()) == len(WINDOWS)  # g at one corner per window, 0 elsewhere


def test_keeps_only_the_window_index_for_backward(triton_backend):
    """One int8 per output element (out's shape, channels_last): PyTorch's window positions, many
    of them ties (small integers), and neither x nor any other tensor."""
    x = (2 * torch.randn(2, 3, 8, 7)).round().clamp(-3, 3).requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = fasthg.ops.max_pool2x2(x)
    assert len(saved) == 1, [(t.dtype, tuple(t.shape)) for t in saved]
    index = saved[0]
    assert index.dtype == torch.int8 and index.shape == out.shape
    assert index.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(index, _corners_pytorch_picks(x))


def test_backward_reads_the_index_not_the_input(triton_backend):
    """The forward writes the index and the backward kernel reads that tensor, and no tensor of x's memory."""
    x = torch.randn(2, 3, 6, 4).to(memory_format=torch.channels_last).requires_grad_()  # the kernel's x_ptr is x
    recorder = LaunchRecorder()  # records the launches without running them
    with recorder:
        fasthg.ops.max_pool2x2(x).backward(torch.randn(2, 3, 3, 2))
    forward, backward = recorder.launches
    assert forward.kernel == "max_pool2x2_forward_kernel" and forward.arguments["WRITE_INDEX"]
    assert forward.arguments["x_ptr"].data_ptr() == x.data_ptr()
    index = forward.arguments["index_ptr"]
    assert backward.kernel == "max_pool2x2_backward_kernel" and "x_ptr" not in backward.arguments
    assert backward.arguments["index_ptr"].data_ptr() == index.data_ptr() and index.dtype == torch.int8
    tensors = [value for value in backward.arguments.values() if isinstance(value, torch.Tensor)]
    assert all(t.untyped_storage().data_ptr() != x.untyped_storage().data_ptr() for t in tensors)


@pytest.mark.parametrize("context, requires_grad", [
    (torch.no_grad, True), (torch.inference_mode, True), (contextlib.nullcontext, False),
], ids=["no_grad", "inference_mode", "input-without-grad"])
def test_writes_no_index_without_autograd(triton_backend, context, requires_grad):
    x = torch.randn(2, 3, 6, 4, requires_grad=requires_grad)
    recorder = LaunchRecorder()  # records the launches without running them
    with recorder, context():
        fasthg.ops.max_pool2x2(x)
    (forward,) = recorder.launches
    assert forward.arguments["WRITE_INDEX"] is False and forward.arguments["index_ptr"] is None
    with context():
        out = fasthg.ops.max_pool2x2(x)
    assert out.grad_fn is None
    assert_close(out, F.max_pool2d(x, 2).detach(), "out", rtol=0, atol=0)


def test_torch_path_and_opcheck(triton_backend):
    x = torch.randn(2, 3, 6, 4, requires_grad=True)
    # Autograd comes from MaxPoolFunction (the op may update running statistics): no-grad inputs.
    # No index here, the variant inference runs (tests/opinfo.py's sample writes one).
    torch.library.opcheck(torch.ops.fasthg.max_pool2x2.default, (x.detach(), None, None, None, None, 0.0))
    with fasthg.backend("torch"):
        check_parity(fasthg.ops.max_pool2x2, lambda t: F.max_pool2d(t, 2), [x.double().detach().requires_grad_()],
                     torch.float64)


@pytest.mark.parametrize("x, error, match", [
    (torch.randn(3, 4, 4), ValueError, r"x: expected a 4-D tensor \(N, C, H, W\)"),
    (torch.randn(1, 3, 1, 4), ValueError, r"x: expected height and width >= 2"),
    (torch.ones(1, 3, 4, 4, dtype=torch.int64), TypeError, "x: expected dtype in"),
])
def test_bad_input(x, error, match):
    with pytest.raises(error, match=match):
        fasthg.ops.max_pool2x2(x)
