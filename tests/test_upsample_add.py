import pytest
import torch

import fasthg
from harness import DTYPES, check_parity

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (3, 67, 4, 9), (1, 130, 8, 8)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_matches_reference(triton_backend, dtype, shape, channels_last):
    n, c, h, w = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    low = torch.randn(n, c, h, w, dtype=torch.float64).to(memory_format=fmt).requires_grad_()
    skip = torch.randn(n, c, 2 * h, 2 * w, dtype=torch.float64).to(memory_format=fmt).requires_grad_()
    check_parity(fasthg.ops.upsample_add, fasthg.reference.upsample_add, [low, skip], dtype, ["grad_low", "grad_skip"])


def test_reads_no_memory_outside_its_tensors(triton_backend):
    # Views into NaN-filled buffers: any stray read past an edge would put NaN into the result.
    guard_low = torch.full((4 * 3 * 5 * 7,), float("nan"))
    guard_skip = torch.full((4 * 3 * 10 * 14,), float("nan"))
    low = guard_low[7:7 + 3 * 5 * 7].view(1, 3, 5, 7).normal_()
    skip = guard_skip[11:11 + 3 * 10 * 14].view(1, 3, 10, 14).normal_()
    out = fasthg.ops.upsample_add(low, skip)
    assert not out.isnan().any()
    torch.testing.assert_close(out, fasthg.reference.upsample_add(low, skip), rtol=0, atol=0)


def test_strided_views(triton_backend):
    low = torch.randn(2, 6, 5, 8)[:, ::2, :, 1:]
    skip = torch.randn(2, 3, 10, 14)
    torch.testing.assert_close(fasthg.ops.upsample_add(low, skip), fasthg.reference.upsample_add(low, skip), rtol=0, atol=0)


def test_torch_path_matches_reference(torch_backend):
    low, skip = torch.randn(2, 3, 5, 7, dtype=torch.float64), torch.randn(2, 3, 10, 14, dtype=torch.float64)
    check_parity(fasthg.ops.upsample_add, fasthg.reference.upsample_add,
                 [low.requires_grad_(), skip.requires_grad_()], torch.float64)


def test_meta_tensors_give_shapes():
    low = torch.empty(16, 256, 4, 4, device="meta")
    skip = torch.empty(16, 256, 8, 8, device="meta")
    assert fasthg.ops.upsample_add(low, skip).shape == (16, 256, 8, 8)


def test_opcheck(triton_backend):
    low, skip = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 8, 10)
    # Autograd comes from UpsampleAddFunction (the op may update running statistics): no-grad inputs.
    torch.library.opcheck(torch.ops.fasthg.upsample_add.default, (low, skip, None, None, None, 0.0))
    torch.library.opcheck(torch.ops.fasthg.upsample_add_backward.default, (torch.randn(2, 3, 8, 10),))


def test_gradcheck(triton_backend):
    low = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fasthg.ops.upsample_add, (low, skip))


@pytest.mark.parametrize("low, skip, error, match", [
    (torch.randn(2, 3, 4), torch.randn(2, 3, 8, 8), ValueError, "low: expected a 4-D tensor"),
    (torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 9), ValueError, r"skip: expected shape \(N, C, 2h, 2w\)"),
    (torch.randn(2, 3, 4, 4), torch.randn(2, 4, 8, 8), ValueError, r"skip: expected shape"),
    (torch.ones(2, 3, 4, 4, dtype=torch.int64), torch.ones(2, 3, 8, 8, dtype=torch.int64), TypeError, "low: expected dtype"),
    (torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8, dtype=torch.float64), TypeError, "low: expected dtype torch.float64"),
    (torch.randn(2, 3, 4, 4, device="meta"), torch.randn(2, 3, 8, 8), ValueError, "low: expected a tensor on cpu"),
    ([1.0], torch.randn(2, 3, 8, 8), TypeError, "low: expected a torch.Tensor"),
])
def test_bad_input(low, skip, error, match):
    with pytest.raises(error, match=match):
        fasthg.ops.upsample_add(low, skip)
