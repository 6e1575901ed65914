"""fasthg.PoseNet / StackedHourglass / Hourglass against fasthg.reference, whole-model."""
import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import fasthg
from fasthg import reference
from harness import assert_as_accurate_as_eager, assert_buffers_close, assert_close, step_counts
from launch_counter import LaunchCounter
from opinfo import stack_head_pair


def make_pair(dtype=torch.float64, nstack=2, inp_dim=16, oup_dim=4, seed=0):
    torch.manual_seed(seed)
    ref = reference.PoseNet(nstack, inp_dim, oup_dim)
    with torch.no_grad():
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5), module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2), module.running_var.uniform_(0.5, 2.0)
    fused = fasthg.PoseNet(nstack, inp_dim, oup_dim)
    fused.load_state_dict(ref.state_dict())
    return ref.to(dtype), fused.to(dtype)


def forward_backward(model, images, grad_out):
    out = model(images)
    out.backward(grad_out)
    return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def assert_parity(out, grads, ref_out, ref_grads):
    assert_close(out, ref_out, "output", rtol=1e-9, atol=1e-9)
    assert set(grads) == set(ref_grads), set(grads) ^ set(ref_grads)  # unused skip layers: no grad in either
    # Gradients that vanish in exact arithmetic (biases and shifts feeding only train-mode BNs) are
    # rounding noise: every gradient is judged on the scale of the largest one.
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, got in grads.items():
        assert_close(got, ref_grads[name], f"grad {name}", rtol=1e-9, atol=1e-9, scale=scale)


def buffers(model):
    return {name: t.clone() for name, t in model.named_buffers()}


@pytest.fixture(scope="module")
def two_training_steps():
    """The reference and the fused model, fp64, trained two steps on the same images: the first
    a forward and backward, the second a forward whose ops are counted. The BNs keep a cumulative
    average (momentum None), so the step counters drive the running statistics: a step counted
    wrongly changes them. Returns what each step left for the tests to judge."""
    with fasthg.backend("triton"):
        ref, fused = make_pair()
        for model in (ref, fused):
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.momentum = None
        images = torch.rand(2, 64, 64, 3, dtype=torch.float64)
        grad_out = torch.randn(2, 2, 4, 16, 16, dtype=torch.float64)
        first = dict(ref=forward_backward(ref, images, grad_out), fused=forward_backward(fused, images, grad_out),
                     ref_buffers=buffers(ref), buffers=buffers(fused))
        ref(images + 1)
        with LaunchCounter() as ops:
            fused(images + 1)
        return first, dict(ops=ops.ops, ref_buffers=buffers(ref), buffers=buffers(fused))


def assert_buffer_dicts_close(got, expected):
    assert got.keys() == expected.keys()
    for name, value in got.items():
        assert_close(value, expected[name], name, rtol=1e-10, atol=1e-10)


def test_fp64_whole_model_parity_in_training(two_training_steps):
    first, _ = two_training_steps
    assert_parity(*first["fused"], *first["ref"])
    assert_buffer_dicts_close(first["buffers"], first["ref_buffers"])


def test_one_launch_counts_the_training_step_of_every_fused_batch_norm(two_training_steps):
    _, second = two_training_steps
    # One _foreach_add_ for the BNs of every Residual and head; the stem's nn.BatchNorm2d counts itself.
    assert second["ops"].count("_foreach_add_") == 1 and second["ops"].count("add_") == 1, second["ops"]
    assert_buffer_dicts_close(second["buffers"], second["ref_buffers"])
    counts = {int(value) for name, value in second["buffers"].items() if name.endswith("num_batches_tracked")}
    assert counts == {2}, counts


def test_fp64_whole_model_parity_in_eval(triton_backend):
    # One stack: the merge between stacks runs in eval in the stack head's own tests (test_stack_head).
    ref, fused = make_pair(nstack=1)
    ref.eval(), fused.eval()
    images = torch.rand(2, 64, 64, 3, dtype=torch.float64)
    grad_out = torch.randn(2, 1, 4, 16, 16, dtype=torch.float64)
    assert_parity(*forward_backward(fused, images, grad_out), *forward_backward(ref, images, grad_out))
    assert_buffers_close(fused, ref, rtol=1e-10, atol=1e-10)


def test_steps_are_counted_for_modules_in_training_mode_only(triton_backend):
    torch.manual_seed(0)
    ref, fused = reference.Hourglass(1, 4), fasthg.Hourglass(1, 4)
    fused.load_state_dict(ref.state_dict())
    for model in (ref, fused):
        model.train()
        model.low1.eval()  # frozen: running statistics used, no step counted
    x = torch.randn(2, 4, 4, 4)
    ref(x), fused(x)
    assert_buffers_close(fused, ref, rtol=1e-6, atol=1e-6)
    assert int(fused.low1.bn1.num_batches_tracked) == 0 and int(fused.up1.bn1.num_batches_tracked) == 1


def test_a_model_run_inside_another_s_forward_counts_its_own_steps(triton_backend):
    """The counted mark belongs to each module, not to the process (nn.DataParallel runs replicas in threads)."""
    torch.manual_seed(0)
    outer, inner = fasthg.Hourglass(1, 4), fasthg.Hourglass(1, 4)
    x = torch.randn(2, 4, 4, 4)
    outer.up1.register_forward_pre_hook(lambda module, args: inner(x))
    outer(x)
    for model in (outer, inner):
        assert set(step_counts(model).values()) == {1}, step_counts(model)


def test_a_shallow_copy_counts_its_own_modules_in_one_launch(triton_backend):
    """nn.DataParallel runs shallow copies (replicas) of a model: the copy's members are its own,
    not those the original gathered (else the copy's head BNs would count themselves)."""
    torch.manual_seed(0)
    model = fasthg.StackedHourglass(1, 8, 3)
    x = torch.rand(2, 3, 64, 64)
    model(x)  # the original gathers its members first
    replica = copy.copy(model)
    with LaunchCounter() as ops:
        replica(x)
    # One _foreach_add_ for the Residuals and the head; the stem's nn.BatchNorm2d counts itself.
    assert ops.ops.count("_foreach_add_") == 1 and ops.ops.count("add_") == 1, ops.ops
    assert set(step_counts(model).values()) == {2}, step_counts(model)  # the copy shares the original's buffers


def test_fp32_eval_as_accurate_as_eager(triton_backend):
    exact_ref, _ = make_pair(torch.float64)
    eager_ref, fused = make_pair(torch.float32)
    for model in (exact_ref, eager_ref, fused):
        model.eval()
    images = torch.rand(2, 64, 64, 3, dtype=torch.float64)
    with torch.no_grad():
        assert_as_accurate_as_eager(fused(images.float()), eager_ref(images.float()), exact_ref(images), "output")


def test_state_dict_is_the_reference_s():
    with torch.device("meta"):
        ref, fused = reference.PoseNet(8, 256, 16), fasthg.PoseNet(8, 256, 16)
    ref_state, state = ref.state_dict(), fused.state_dict()
    assert list(state) == list(ref_state)
    assert all(state[k].shape == ref_state[k].shape for k in state)


def test_loads_a_princeton_checkpoint(tmp_path):
    ref, _ = make_pair(torch.float32, nstack=1)
    torch.save({"state_dict": {"model.module." + k: v for k, v in ref.state_dict().items()}}, tmp_path / "checkpoint.pt")
    fused = fasthg.PoseNet(1, 16, 4)
    fasthg.load_state_dict_compat(tmp_path / "checkpoint.pt", fused)
    ref.eval(), fused.eval()
    images = torch.rand(1, 64, 64, 3)
    with torch.no_grad():  # eval folds bn2/bn3 into the convs on the CPU path: equal up to fp32 rounding
        assert_close(fused(images), ref(images), "output")


def test_stacked_hourglass_takes_nchw_and_channels_last(triton_backend):
    ref, _ = make_pair(torch.float64, nstack=1)
    fused = fasthg.StackedHourglass(1, 16, 4).double()
    fused.load_state_dict(ref.state_dict())
    ref.eval(), fused.eval()
    images = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = ref(images.permute(0, 2, 3, 1))
        for layout in (torch.contiguous_format, torch.channels_last):
            assert_close(fused(images.to(memory_format=layout)), expected, "output", rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nstack", [2, 8])
def test_full_size_saved_activations_at_most_055_of_reference(nstack):
    from test_residual import saved_activation_bytes
    with torch.device("meta"):
        ref, fused = reference.PoseNet(nstack, 256, 16), fasthg.PoseNet(nstack, 256, 16)
        images = torch.empty(16, 256, 256, 3)
    ratio = saved_activation_bytes(fused, images) / saved_activation_bytes(ref, images)
    assert ratio <= 0.55, f"nstack={nstack}: fused saves {ratio:.3f}x the reference's activations"


def test_meta_forward_and_backward_give_shapes():
    with torch.device("meta"):
        model = fasthg.PoseNet(2, 32, 16)
        out = model(torch.empty(2, 128, 128, 3))
        out.sum().backward()
    assert out.shape == (2, 2, 16, 32, 32)
    assert model.pre[1].conv2.conv.weight.grad.shape == (64, 64, 3, 3)


def test_unused_skip_layers_are_out_of_autograd():
    model = fasthg.PoseNet(1, 16, 4)
    unused = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert unused and all(".skip_layer." in n for n in unused)
    assert model.pre[1].skip_layer.conv.weight.requires_grad  # Residual(64, 128) uses its skip


@pytest.mark.parametrize("make_input, error, match", [
    (lambda: torch.rand(1, 3, 64, 64), ValueError, r"imgs: expected 3 colour channels in dim 3.*NCHW batch given to PoseNet"),
    (lambda: torch.rand(1, 96, 64, 3), ValueError, r"imgs: expected height and width divisible by 64.*got 96x64"),
    (lambda: torch.rand(1, 64, 64, 4), ValueError, r"imgs: expected 3 colour channels"),
    (lambda: torch.randint(0, 255, (1, 64, 64, 3)), TypeError, r"imgs: expected dtype in"),
    (lambda: torch.rand(64, 64, 3), ValueError, r"imgs: expected a 4-D tensor \(N, H, W, 3\)"),
])
def test_bad_input(make_input, error, match):
    with pytest.raises(error, match=match):
        fasthg.PoseNet(1, 16, 4)(make_input())


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist
    import fasthg
    rank, world = int(sys.argv[1]), 2
    dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=world)
    torch.manual_seed(0)
    model = fasthg.PoseNet(1, 16, 4).double()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    torch.manual_seed(1)
    images = torch.rand(4, 64, 64, 3, dtype=torch.float64)
    for step in range(2):
        optimizer.zero_grad()
        ddp(images[2 * rank: 2 * rank + 2]).square().mean().backward()
        optimizer.step()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, sys.argv[3])
    dist.destroy_process_group()
""")


def test_ddp_two_gloo_processes_without_find_unused_parameters(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET")
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path / "rendezvous"), str(tmp_path / "grads.pt")],
                              env=env, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    ddp_grads = torch.load(tmp_path / "grads.pt")
    # The same two steps in one process on the whole batch. BN statistics are per process in DDP,
    # so the single-process run mirrors that: each half-batch forward separately, losses averaged.
    torch.manual_seed(0)
    model = fasthg.PoseNet(1, 16, 4).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1)
    images = torch.rand(4, 64, 64, 3, dtype=torch.float64)
    for step in range(2):
        optimizer.zero_grad()
        loss = sum(model(images[2 * r: 2 * r + 2]).square().mean() for r in range(2)) / 2
        loss.backward()
        optimizer.step()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(ddp_grads) == set(grads)
    scale = max(float(g.abs().max()) for g in grads.values())  # some biases' exact gradient is zero
    for name, grad in ddp_grads.items():
        assert_close(grad, grads[name], name, rtol=1e-9, atol=1e-9, scale=scale)


@pytest.mark.parametrize("merged", [True, False], ids=["merge", "last-stack"])
def test_opcheck_head(triton_backend, merged):
    model = fasthg.PoseNet(2, 8, 3)
    features = model.features[0][1]
    with torch.no_grad():
        h, x = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
        merge = [model.merge_features[0].conv.conv, model.merge_preds[0].conv.conv] if merged else []
        merge_params = [t.detach() for conv in merge for t in (conv.weight, conv.bias)] or [None] * 4
        args = (h, x if merged else None, features.conv.weight.detach(), features.conv.bias.detach(),
                features.bn.weight.detach(), features.bn.bias.detach(), features.bn.running_mean.clone(),
                features.bn.running_var.clone(), model.outs[0].conv.weight.detach(), model.outs[0].conv.bias.detach(),
                *merge_params, True, 0.1, 1e-5)
        torch.library.opcheck(torch.ops.fasthg.head_forward.default, args)
        preds, x_next, z, stats = torch.ops.fasthg.head_forward(*args)
        backward_args = (torch.randn_like(preds), torch.randn_like(x) if merged else None, h, z, preds, stats,
                         args[2], args[4], args[5], args[8], merge_params[0], merge_params[2], True, 1e-5)
        torch.library.opcheck(torch.ops.fasthg.head_backward.default, backward_args)


def test_head_eval_backward_after_two_eval_forwards(triton_backend):
    """Gradients accumulated over two eval forwards (frozen-BN fine-tuning): the head's copy of
    the running statistics must survive the second forward (test_residual checks the Residual's)."""
    fused, ref = stack_head_pair(5, 3, True)
    inputs = [(torch.randn(2, 5, 4, 3, dtype=torch.float64), torch.randn(2, 5, 4, 3, dtype=torch.float64))
              for _ in range(2)]
    for model in (fused, ref):
        model.eval()
        sum(sum(out.square().sum() for out in model(h, x)) for h, x in inputs).backward()
    trained = [(name, p, ref_p) for (name, p), (_, ref_p) in zip(fused.named_parameters(), ref.named_parameters())
               if ref_p.requires_grad]  # the head's parameters; the rest of the model is frozen
    assert len(trained) == 10  # features conv and BN, heatmap conv, both merges: weights and biases
    for name, p, ref_p in trained:
        assert_close(p.grad, ref_p.grad, f"grad {name}", rtol=1e-10, atol=1e-10)
