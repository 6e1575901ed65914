"""The benchmark's accounting (bench/): hand-countable cases, the traffic model's coverage, and every
fasthg op's declared ``KERNEL_LAUNCHES`` against the launches its kernels make in the interpreter."""
import importlib

import pytest
import torch

import fasthg
from bench.counting import DeclarationMismatch, Kernel, KernelCounter, SavedActivations
from bench.roofline import GPUS, LAUNCH_OVERHEAD_SECONDS
from bench.traffic import TRITON_TRAFFIC, UNCOUNTED_POINTERS
from bench.work import WorkClass
from fasthg import reference
from fasthg.kernels import registry
from fasthg.ops import conv_launchers
from fasthg.ops.head import head

F32 = 4  # bytes


def test_conv_bn_relu_step_counted_by_hand():
    # x (2, 3, 8, 8) -> 3x3 conv (8 channels) -> train-mode BN -> ReLU, then backward; x needs no grad.
    with torch.device("meta"):
        module = reference.Conv(3, 8, 3, bn=True, relu=True)
        x, grad = torch.empty(2, 3, 8, 8), torch.empty(2, 8, 8, 8)
    act, x_bytes, weight, channel = 2 * 8 * 64 * F32, 2 * 3 * 64 * F32, 8 * 3 * 9 * F32, 8 * F32
    counter, saved = KernelCounter(), SavedActivations([*module.parameters(), *module.buffers()])
    with counter, saved:
        module(x).backward(grad)
    conv_flops = 2 * (2 * 64) * 8 * (3 * 9)  # 2 x rows x out channels x (in channels x taps)
    assert counter.kernels == [
        Kernel("aten::convolution", "aten::convolution", x_bytes + weight + channel + act, conv_flops),
        Kernel("aten::add_", "aten::add_", 8 + 8, 0),  # num_batches_tracked (int64) read and written
        Kernel("aten::native_batch_norm", "aten::native_batch_norm", act + 4 * channel + act + 2 * channel, 0),
        Kernel("aten::relu", "aten::relu", act + act, 0),
        Kernel("aten::threshold_backward", "aten::threshold_backward", 3 * act, 0),
        # reads grad, input, weight, running mean and var, saved mean and invstd; writes 3 gradients
        Kernel("aten::native_batch_norm_backward", "aten::native_batch_norm_backward",
               2 * act + 5 * channel + act + 2 * channel, 0),
        # x needs no gradient: wgrad and the bias gradient only
        Kernel("aten::convolution_backward", "aten::convolution_backward", act + x_bytes + weight + weight + channel, conv_flops),
    ]
    # conv: x; BN: its input, saved mean and invstd; ReLU: its output (weights and running statistics excluded)
    assert saved.bytes == x_bytes + act + 2 * channel + act


@pytest.mark.parametrize("side", ["eager", "fasthg"])
def test_upsample_add_counted_by_hand(side):
    with torch.device("meta"):
        low = torch.empty(2, 4, 4, 4).to(memory_format=torch.channels_last).requires_grad_()
        # skip needs no gradient: it would be dL/dout itself, which autograd copies into skip.grad.
        skip = torch.empty(2, 4, 8, 8).to(memory_format=torch.channels_last)
        grad = torch.empty(2, 4, 8, 8).to(memory_format=torch.channels_last)
    small, large = 2 * 4 * 16 * F32, 2 * 4 * 64 * F32
    upsample = torch.nn.Upsample(scale_factor=2, mode="nearest")  # the reference hourglass's up2
    upsample_add = fasthg.ops.upsample_add if side == "fasthg" else lambda low, skip: skip + upsample(low)
    counter = KernelCounter()
    with counter:
        upsample_add(low, skip).backward(grad)
    if side == "fasthg":
        # The interpreter's tiles (128 pixels x 64 channels) cover either grid in one program of one step.
        one_tile = (WorkClass(1, 1),)
        label = {name: registry.lookup(name, torch.float32, low.device).label for name in ("upsample_add_forward", "upsample_add_backward")}
        expected = [Kernel("fasthg::upsample_add", "upsample_add_forward_kernel", small + 2 * large, 0, triton=True,
                           work=one_tile, configuration=label["upsample_add_forward"]),
                    Kernel("fasthg::upsample_add_backward", "upsample_add_backward_kernel", large + small, 0, triton=True,
                           work=one_tile, configuration=label["upsample_add_backward"])]
    else:
        expected = [Kernel("aten::upsample_nearest2d", "aten::upsample_nearest2d", small + large, 0),
                    Kernel("aten::add", "aten::add", 3 * large, 0),
                    Kernel("aten::upsample_nearest2d_backward", "aten::upsample_nearest2d_backward", large + small, 0)]
    assert counter.kernels == expected
    assert [(call.op, call.launched) for call in counter.calls] == (
        [("fasthg::upsample_add", 1), ("fasthg::upsample_add_backward", 1)] if side == "fasthg" else [])


def test_roofline_of_one_kernel():
    h100 = GPUS[0]
    memory_bound = Kernel("k", "k", bytes=int(h100.bandwidth), flops=10**12)
    compute_bound = Kernel("k", "k", bytes=0, flops=int(h100.peak_flops[torch.bfloat16]))
    assert h100.kernel_seconds(memory_bound, torch.bfloat16) == pytest.approx(1.0 + LAUNCH_OVERHEAD_SECONDS)
    assert h100.step_seconds([memory_bound, compute_bound], torch.bfloat16) == pytest.approx(2.0 + 2 * LAUNCH_OVERHEAD_SECONDS)


def test_traffic_model_covers_every_pointer_of_every_kernel():
    for config in registry.REGISTRY:
        kernel = config.kernel.fn.__name__
        listed = {name for names, _ in TRITON_TRAFFIC[kernel] for name in names}
        pointers = {name for name in config.parameters if name.endswith("_ptr")}
        counted = pointers - UNCOUNTED_POINTERS
        assert counted == listed, f"{kernel}: unlisted {counted - listed}, stale {listed - pointers}"


# --- declared KERNEL_LAUNCHES against the launches made, kernels running in the interpreter ----------------

def _residual(inp, out, training):
    module = fasthg.Residual(inp, out).train(training)
    x = torch.randn(2, inp, 3, 3, requires_grad=True)
    return lambda: module(x).sum().backward()


def _head(merged, training):
    model = fasthg.PoseNet(2, 8, 3).train(training)
    stack = 0 if merged else 1
    features = model.features[stack][1]
    merge = (model.merge_features[0].conv.conv, model.merge_preds[0].conv.conv) if merged else (None, None)
    h, x = torch.randn(2, 8, 4, 4, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)

    def step():
        preds, x_next, _ = head(h, x, features.conv, features.bn, model.outs[stack].conv, *merge, training, 0.1,
                                torch.float32)
        (preds.sum() + (x_next.sum() if merged else 0)).backward()
    return step


def _pixel_op(op):
    x = torch.randn(2, 4, 4, 6, requires_grad=True)
    if op == "max_pool2x2":
        return lambda: fasthg.ops.max_pool2x2(x).sum().backward()
    return lambda: fasthg.ops.upsample_add(torch.randn(2, 4, 2, 3, requires_grad=True), x).sum().backward()


def _residual_after_pool():
    """A max-pool reducing the statistics of its output for the Residual that normalises it."""
    module = fasthg.Residual(4, 4)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    return lambda: module(*fasthg.ops.max_pool2x2(x, module.input_batch_norm())).sum().backward()


CASES = {  # case: (step, the (op module, KERNEL_LAUNCHES key) pairs it runs)
    "residual-train": (lambda: _residual(4, 4, True), {("residual", "forward_train"), ("residual", "backward")}),
    "residual-train-skip": (lambda: _residual(4, 6, True), {("residual", "forward_train"), ("residual", "backward_skip")}),
    "residual-eval": (lambda: _residual(4, 4, False), {("residual", "forward_eval"), ("residual", "backward")}),
    "residual-train-given-stats": (_residual_after_pool, {("max_pool", "forward"), ("max_pool", "backward"),
                                                          ("residual", "forward_train_given_stats"),
                                                          ("residual", "backward")}),
    "residual-eval-skip": (lambda: _residual(4, 6, False), {("residual", "forward_eval"), ("residual", "backward_skip")}),
    "head-train": (lambda: _head(True, True), {("head", "forward"), ("head", "backward")}),
    "head-train-last": (lambda: _head(False, True), {("head", "forward_last"), ("head", "backward_last")}),
    "head-eval": (lambda: _head(True, False), {("head", "forward"), ("head", "backward")}),
    "head-eval-last": (lambda: _head(False, False), {("head", "forward_last"), ("head", "backward_last")}),
    "upsample_add": (lambda: _pixel_op("upsample_add"), {("upsample_add", "forward"), ("upsample_add", "backward")}),
    "max_pool2x2": (lambda: _pixel_op("max_pool2x2"), {("max_pool", "forward"), ("max_pool", "backward")}),
}


def test_cases_cover_every_declared_variant():
    covered = {pair for _, pairs in CASES.values() for pair in pairs}
    declared = {(module, key) for module in ("residual", "head", "upsample_add", "max_pool")
                for key in importlib.import_module(f"fasthg.ops.{module}").KERNEL_LAUNCHES}
    assert covered == declared


@pytest.mark.parametrize("case", CASES)
def test_declared_launches_are_the_launches_made(triton_backend, monkeypatch, case):
    make_step, variants = CASES[case]
    step = make_step()
    # Launches counted independently of the counter's hook, at the launchers themselves.
    launched = []
    launchers = [(conv_launchers, "_launch")] + [
        (importlib.import_module(f"fasthg.ops.{module}"), "launch_pixel_tiles") for module in ("upsample_add", "max_pool")]
    for module, name in launchers:
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, original=original, **named: (launched.append(args[0]),
                                                                                      original(*args, **named)))
    counter = KernelCounter(execute=True)  # raises DeclarationMismatch on any call whose launches differ
    with counter:
        step()
    assert {(call.module.removeprefix("fasthg.ops."), call.variant) for call in counter.calls} == variants
    assert all(call.launched == call.declared for call in counter.calls), counter.calls
    assert sum(kernel.triton for kernel in counter.kernels) == len(launched)


def test_a_wrong_declaration_stops_the_count(triton_backend, monkeypatch):
    residual = importlib.import_module("fasthg.ops.residual")
    monkeypatch.setitem(residual.KERNEL_LAUNCHES, "backward", 7)
    step = _residual(4, 4, True)
    with pytest.raises(DeclarationMismatch, match=r"made 4 Triton launches; fasthg.ops.residual.KERNEL_LAUNCHES\['backward'\] declares 7"):
        with KernelCounter(execute=True):
            step()
