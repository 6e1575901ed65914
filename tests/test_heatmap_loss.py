"""heatmap_loss: values and gradients against the reference (render, then MSE) in both forms,
several stacks, invisible and NaN joints, hand-computed values, GPU tiles, the custom op, bad input."""
import math

import pytest
import torch

import fasthg
from harness import assert_close
from heatmap_cases import BACKENDS, emulating

STYLES = fasthg.reference.heatmaps.STYLES


def _problem(batch=2, stacks=3, joints=4, size=(7, 9), dtype=torch.float64, seed=0):
    """preds (B, S, K, H, W) uniform in [0, 1); keypoints (K >= 3) with a NaN and an off-map joint;
    visibility with a hidden joint."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    keypoints = torch.rand(batch, joints, 2, generator=generator) * torch.tensor([width + 2.0, height + 2.0]) - 1.0
    keypoints[0, 1] = torch.tensor([float("nan"), 2.0])
    keypoints[-1, 2] = torch.tensor([width + 9.0, 1.0])
    visible = torch.ones(batch, joints, dtype=torch.bool)
    visible[-1, 0] = False
    preds = torch.rand(batch, stacks, joints, height, width, generator=generator, dtype=torch.float64)
    return preds.to(dtype), keypoints, visible


def _loss_and_grad(fn, preds):
    preds = preds.detach().clone().requires_grad_()
    loss, per_stack = fn(preds)
    (grad,) = torch.autograd.grad(loss, preds)
    return loss, per_stack, grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["princeton", "weighted"])
@pytest.mark.parametrize("style", STYLES)
def test_matches_reference_fp64(backend, style, weighted):
    preds, keypoints, visible = _problem()
    reference = _loss_and_grad(lambda p: fasthg.reference.heatmap_loss(p, keypoints, visible, 1.0, style, weighted,
                                                                       per_stack=True), preds)
    with fasthg.backend(backend):
        got = _loss_and_grad(lambda p: fasthg.ops.heatmap_loss(p, keypoints, visible, 1.0, style, weighted,
                                                               per_stack=True), preds)
    for name, g, r in zip(("loss", "per_stack", "grad"), got, reference):
        assert g.dtype == torch.float64, f"{name}: dtype {g.dtype}"
        assert_close(g, r, name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_lower_precision_preds(backend, dtype):
    # Judged against the fp64 reference on the same (rounded) predictions: the loss is summed in
    # fp32, the gradient is stored in the predictions' dtype.
    preds, keypoints, visible = _problem(dtype=dtype, seed=3)
    for weighted in (False, True):
        reference = _loss_and_grad(lambda p: fasthg.reference.heatmap_loss(p, keypoints, visible, 2.0, "mmpose",
                                                                           weighted, per_stack=True), preds.double())
        with fasthg.backend(backend):
            loss, per_stack, grad = _loss_and_grad(
                lambda p: fasthg.ops.heatmap_loss(p, keypoints, visible, 2.0, "mmpose", weighted, per_stack=True), preds)
        assert loss.dtype == torch.float32 and grad.dtype == dtype
        assert_close(loss, reference[0].float(), "loss")
        assert_close(per_stack, reference[1].float(), "per_stack")
        assert_close(grad, reference[2].to(dtype), "grad", dtype=dtype)


def test_hand_computed_values(triton_backend):
    # One joint at the centre of a 9x9 map (princeton, sigma 1: the whole 9x9 patch is on the
    # map), predictions all zero: L = mean T^2 = (sum_i exp(-i^2))^2 / 81 over i = -4..4.
    keypoints = torch.tensor([[[4.5, 4.5]]])
    preds = torch.zeros(1, 1, 1, 9, 9, dtype=torch.float64)
    row = sum(math.exp(-i * i) for i in range(-4, 5))
    assert abs(float(fasthg.ops.heatmap_loss(preds, keypoints)) - row ** 2 / 81) < 1e-12
    # weighted: 0.5 * mean w^2 (pred - T)^2; with preds = 1, bearpaw keeps a joint at x = -3.5
    # (br = int(0.5) = 0 is not < 0) with an empty map, and drops one at x = -5 (br = -1).
    ones = torch.ones(1, 2, 1, 9, 9, dtype=torch.float64)
    kept = fasthg.ops.heatmap_loss(ones, torch.tensor([[[-3.5, 4.0]]]), sigma=1.0, style="bearpaw", weighted=True)
    dropped = fasthg.ops.heatmap_loss(ones, torch.tensor([[[-5.0, 4.0]]]), sigma=1.0, style="bearpaw", weighted=True)
    assert float(kept) == 2 * 0.5 and float(dropped) == 0.0  # two stacks, summed


@pytest.mark.parametrize("backend", BACKENDS)
def test_stacks_reduce_by_mean_or_sum(backend):
    preds, keypoints, visible = _problem(stacks=3)
    preds[:, 1] += 1.0  # a worse middle stack
    with fasthg.backend(backend):
        loss, per_stack = fasthg.ops.heatmap_loss(preds, keypoints, visible, per_stack=True)
        weighted, weighted_stacks = fasthg.ops.heatmap_loss(preds, keypoints, visible, weighted=True, per_stack=True)
        single = fasthg.ops.heatmap_loss(preds[:, 1:2], keypoints, visible)
    assert per_stack.shape == (3,) and per_stack.argmax() == 1
    assert_close(per_stack[1], single, "stack 1 alone")
    assert_close(loss, per_stack.mean(), "princeton total")
    assert_close(weighted, weighted_stacks.sum(), "weighted total")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_joints_only_touch_their_own_gradient(backend):
    preds, keypoints, visible = _problem(stacks=2)
    n = preds[:, 0].numel()  # B K H W
    with fasthg.backend(backend):
        _, _, grad = _loss_and_grad(lambda p: (fasthg.ops.heatmap_loss(p, keypoints, visible), None), preds)
        _, _, weighted = _loss_and_grad(lambda p: (fasthg.ops.heatmap_loss(p, keypoints, visible, weighted=True), None),
                                        preds)
    assert grad.isfinite().all() and weighted.isfinite().all()
    # princeton: a NaN joint's target is 0, so its gradient is 2 pred / N / S; weighted: 0.
    assert_close(grad[0, :, 1], 2 * preds[0, :, 1] / n / 2, "NaN joint, princeton")
    assert (weighted[0, :, 1] == 0).all() and (weighted[-1, :, 0] == 0).all()  # the NaN and the hidden joint
    assert (weighted[0, :, 0] != 0).any()


@pytest.mark.parametrize("weighted", [False, True], ids=["princeton", "weighted"])
def test_gpu_tiles_loop_over_pixel_blocks(triton_backend, weighted):
    preds, keypoints, visible = _problem(batch=1, stacks=2, joints=3, size=(40, 40))
    keypoints[0, 0] = torch.tensor([30.5, 35.25])  # its Gaussian in the second 1024-pixel block
    reference = _loss_and_grad(lambda p: fasthg.reference.heatmap_loss(p, keypoints, visible, 2.0, "unbiased",
                                                                       weighted, per_stack=True), preds)
    with emulating(80):
        got = _loss_and_grad(lambda p: fasthg.ops.heatmap_loss(p, keypoints, visible, 2.0, "unbiased", weighted,
                                                               per_stack=True), preds)
    for name, g, r in zip(("loss", "per_stack", "grad"), got, reference):
        assert_close(g, r, name)


def test_reads_no_memory_outside_preds(triton_backend):
    guard = torch.full((2 * 2 * 3 * 5 * 6 + 40,), float("nan"), dtype=torch.float64)
    preds = guard[13:13 + 2 * 2 * 3 * 5 * 6].view(2, 2, 3, 5, 6).uniform_()
    keypoints = torch.tensor([[[1.0, 2.0], [4.5, 0.5], [5.9, 4.9]], [[0.5, 0.5], [3.0, 3.0], [2.0, 4.0]]])
    loss = fasthg.ops.heatmap_loss(preds, keypoints, style="bearpaw", weighted=True)
    assert_close(loss, fasthg.reference.heatmap_loss(preds, keypoints, None, 1.0, "bearpaw", True), "loss")


def test_no_gradient_needed(triton_backend):
    preds, keypoints, visible = _problem()
    with torch.no_grad():
        loss = fasthg.ops.heatmap_loss(preds.requires_grad_(), keypoints, visible)
    assert_close(loss, fasthg.reference.heatmap_loss(preds.detach(), keypoints, visible), "loss")


def test_gradcheck(triton_backend):
    preds, keypoints, visible = _problem(batch=1, stacks=2, joints=3, size=(3, 4))
    assert torch.autograd.gradcheck(lambda p: fasthg.ops.heatmap_loss(p, keypoints, visible, 1.0, "mmpose", True),
                                    (preds.requires_grad_(),), fast_mode=True)


def test_meta_tensors_give_shapes():
    loss, per_stack = fasthg.ops.heatmap_loss(torch.empty(16, 8, 16, 64, 64, device="meta"),
                                              torch.empty(16, 16, 2, device="meta"), per_stack=True)
    assert loss.shape == () and per_stack.shape == (8,) and loss.device.type == "meta"


def test_opcheck(triton_backend):
    preds, keypoints, visible = _problem(batch=1, stacks=2, joints=3, size=(3, 4), dtype=torch.float32)
    torch.library.opcheck(torch.ops.fasthg.heatmap_loss.default,
                          (preds.requires_grad_(), keypoints, visible, 1.0, "princeton", True, True))


PREDS = torch.zeros(2, 1, 3, 4, 4)
KEYPOINTS = torch.zeros(2, 3, 2)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((torch.zeros(2, 3, 4, 4), KEYPOINTS), {}, ValueError, r"preds: expected a 5-D tensor \(B, S, K, H, W\)"),
    ((torch.zeros(2, 1, 3, 4, 4, dtype=torch.int32), KEYPOINTS), {}, TypeError, "preds: expected dtype"),
    ((torch.zeros(3, 1, 3, 4, 4), KEYPOINTS), {}, ValueError, r"preds: expected shape \(B, S, K, H, W\) with \(B, K\)"),
    ((torch.zeros(2, 1, 4, 4, 4), KEYPOINTS), {}, ValueError, r"with \(B, K\) = \(2, 3\)"),
    ((torch.zeros(2, 0, 3, 4, 4), KEYPOINTS), {}, ValueError, "preds: expected a non-empty tensor"),
    ((PREDS, torch.zeros(2, 3)), {}, ValueError, "keypoints: expected a 3-D tensor"),
    ((PREDS, KEYPOINTS, torch.ones(3, 2)), {}, ValueError, r"visible: expected shape \(B, K\)"),
    ((PREDS, KEYPOINTS), {"sigma": 0}, ValueError, "sigma: expected a finite number > 0"),
    ((PREDS, KEYPOINTS), {"style": "msra"}, ValueError, "style: expected one of"),
    ((PREDS, KEYPOINTS), {"weighted": 1}, TypeError, "weighted: expected a bool"),
    ((PREDS, torch.zeros(2, 3, 2, device="meta")), {}, ValueError, "keypoints: expected a tensor on cpu"),
])
def test_bad_input(triton_backend, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fasthg.ops.heatmap_loss(*args, **kwargs)



def test_declared_launches_are_the_launches_made(triton_backend):
    from bench.counting import KernelCounter  # raises on any call whose launches differ from KERNEL_LAUNCHES
    preds, keypoints, visible = _problem(batch=1, stacks=2, joints=3, size=(3, 4), dtype=torch.float32)
    counter = KernelCounter(execute=True)
    with counter:
        fasthg.ops.heatmap_loss(preds.requires_grad_(), keypoints, visible).backward()
        fasthg.ops.render_heatmaps(keypoints, visible, (3, 4))
        fasthg.ops.decode_heatmaps(preds[:, 0].detach())
    assert [(call.op, call.launched) for call in counter.calls] == [
        ("fasthg::heatmap_loss", 1), ("fasthg::render_heatmaps", 1), ("fasthg::decode_heatmaps", 1)]
    assert [k.kernel for k in counter.kernels if k.triton] == [
        "heatmap_loss_kernel", "render_heatmaps_kernel", "decode_heatmaps_kernel"]


def test_torch_compile_captures_the_ops_in_one_graph(triton_backend):
    preds, keypoints, visible = _problem(batch=1, stacks=2, joints=3, size=(4, 5), dtype=torch.float32)

    def step(p):
        loss = fasthg.ops.heatmap_loss(p, keypoints, visible, 1.0, "mmpose", True)
        return loss, fasthg.ops.render_heatmaps(keypoints, visible, (4, 5)), fasthg.ops.decode_heatmaps(p[:, -1])[0]

    compiled = _loss_and_grad(lambda p: torch.compile(step, fullgraph=True, backend="aot_eager")(p)[:2], preds)
    eager = _loss_and_grad(lambda p: step(p)[:2], preds)
    for name, got, want in zip(("loss", "maps", "grad"), compiled, eager):
        assert torch.equal(got, want), name
