import pytest
import torch
import torch.nn.functional as F

import fasthg
from harness import DTYPES, check_parity

SHAPES = [(1, 1, 2, 2), (2, 3, 6, 10), (1, 67, 5, 7), (2, 130, 4, 4)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_max_pool2d(triton_backend, dtype, shape):
    x = torch.randn(shape, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    check_parity(fasthg.ops.max_pool2x2, lambda t: F.max_pool2d(t, 2), [x], dtype, ["grad_x"])


def test_ties_and_nan_pick_the_window_position_pytorch_picks(triton_backend):
    x = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]], [[0.0, float("nan")], [5.0, 1.0]]]])
    x = x.to(memory_format=torch.channels_last)
    grad = torch.tensor([[[[3.0]], [[4.0]], [[5.0]]]])
    ours, = torch.autograd.grad(fasthg.ops.max_pool2x2(x.requires_grad_()), x, grad)
    theirs, = torch.autograd.grad(F.max_pool2d(x, 2), x, grad)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert fasthg.ops.max_pool2x2(x)[0, 2].isnan().all()
    # Hand-computed: ties go to the first corner; the NaN corner takes the gradient.
    assert ours[0, 0].tolist() == [[3.0, 0.0], [0.0, 0.0]]
    assert ours[0, 1].tolist() == [[0.0, 4.0], [0.0, 0.0]]
    assert ours[0, 2].tolist() == [[0.0, 5.0], [0.0, 0.0]]


def test_keeps_only_its_input_for_backward(triton_backend):
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fasthg.ops.max_pool2x2(x)
    assert len(saved) == 1 and saved[0] is x


def test_torch_path_and_opcheck(triton_backend):
    x = torch.randn(2, 3, 6, 4, requires_grad=True)
    # Autograd comes from MaxPoolFunction (the op may update running statistics): no-grad inputs.
    torch.library.opcheck(torch.ops.fasthg.max_pool2x2.default, (x.detach(), None, None, None, 0.0))
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
