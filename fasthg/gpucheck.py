"""``python -m fasthg.gpucheck`` (``make gpucheck``): is every fasthg kernel right on this GPU, and how fast?

    python -m fasthg.gpucheck [--out results] [--only NAME ...] [--no-timings] [--device cuda:N]

One command for a machine with an NVIDIA GPU (about 6 minutes on an H100, most of it compiling:
Triton's kernels and torch.compile's max-autotune). Checks, each passed or failed:

* parity of every fasthg op (upsample_add, max_pool2x2, render_heatmaps, heatmap_loss,
  decode_heatmaps, Residual) and of a whole PoseNet training step (forward, loss, backward,
  running statistics; the stack heads run inside it) against ``fasthg.reference`` at full size
  (batch 16, 256x256, inp_dim 256, 8 stacks): fp32 with TF32 off, bf16 and fp16, each judged by
  its distance from the fp64 result relative to eager PyTorch's own distance in that dtype
  (:mod:`fasthg.accuracy`, the rule of the test suite);
* bitwise determinism of two identical training steps;
* a launch on a second stream, two reducing launches on two streams at once, and one on cuda:1
  (when there is one) while cuda:0 is current; capture and replay of a training step in a CUDA graph.

Then timings (CUDA events, warm-up, median of repeats; ``--no-timings`` skips them): fasthg, eager
and ``torch.compile(mode="max-autotune")`` for the 2- and 8-stack training step and inference in
bf16 and fp32 with peak memory (the benchmark's GPU section, bench/), and each fused op against
the eager ops it replaces, with achieved TB/s and TFLOP/s next to the H100 roofline of its bytes
and FLOPs. Timings inform; they pass or fail nothing.

Without CUDA the same parity and determinism checks run at interpreter sizes, kernels in the
Triton interpreter (the command re-runs itself with TRITON_INTERPRET=1), so CI runs their code,
in two processes where there are two cores (``--jobs``);
the GPU-only checks and the timings are reported as not run. Writes ``gpucheck.json`` and
``gpucheck.md`` into ``--out`` and prints the verdict. Exit status 0 only when every check that
ran passed; 1 otherwise; 2 for a bad command line. The timings need the repository's ``bench``
package: run the command from a fasthg clone.
"""
import argparse
import concurrent.futures
import copy
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import cli, ops, reference
from .accuracy import (
    EAGER_FACTOR, FLOOR_ULPS, against_eager, in_accumulation_dtype, magnitude, round_stored_tensors,
)
from .dispatch import backend, interpreting, rerun
from .distributed import use_device
from .models import PoseNet
from .nn import Residual

FP64_TOLERANCE = 1e-9  # fp64 against fp64: relative, on the scale of the tensor (of all gradients)
NO_GPU = "not run: no CUDA device here"


@dataclass(frozen=True)
class Sizes:
    """The shapes every check runs at: ``size`` x ``size`` images, feature maps and heatmaps of size / 4."""
    batch: int
    size: int
    inp_dim: int
    nstack: int
    joints: int
    model_dtypes: tuple  # dtypes the whole model is judged in
    op_dtypes: tuple
    whole_model_determinism: bool = True  # else the Residual's step (the interpreter's PoseNet step takes ~1 min)

    @property
    def maps(self):
        return self.size // 4


LOW_PRECISION = (torch.float32, torch.bfloat16, torch.float16)
FULL = Sizes(batch=16, size=256, inp_dim=256, nstack=8, joints=16, model_dtypes=LOW_PRECISION, op_dtypes=LOW_PRECISION)
# The interpreter runs the fused 1-stack PoseNet training step in about 2 minutes at this size (the
# depth-4 hourglass needs 64x64 images), the rest of the checks together in about one; whole models are judged
# in fp64 there, since at tiny sizes eager's own low-precision error is luck, no bar (docs/without_a_gpu.md).
INTERPRETER = Sizes(batch=2, size=64, inp_dim=4, nstack=1, joints=2, model_dtypes=(torch.float64,), op_dtypes=LOW_PRECISION,
                    whole_model_determinism=False)


# ------------------------------------------------------------------------------------------ cases

@dataclass
class Case:
    """One op or model: fused and reference callables (or modules), fp64 inputs, which of them get gradients."""
    name: str
    fused: object
    reference: object
    inputs: dict
    differentiable: tuple = ()
    options: dict = None


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _keypoints(sizes, g):
    """(batch, joints, 2) x, y over the heatmap and a pixel beyond it, the first joint at the centre."""
    points = torch.rand(sizes.batch, sizes.joints, 2, generator=g, dtype=torch.float64) * (sizes.maps + 2) - 1
    points[:, 0] = sizes.maps / 2
    return points.float()


def _visible(sizes, g):
    visible = torch.rand(sizes.batch, sizes.joints, generator=g) > 0.25
    visible[:, 0] = True
    return visible


def _residual_pair(sizes):
    """(fused, reference) Residual(inp_dim / 2 -> inp_dim): the pre-network's last block, skip conv included."""
    torch.manual_seed(0)
    ref = reference.Residual(sizes.inp_dim // 2, sizes.inp_dim).double()
    fused = Residual(sizes.inp_dim // 2, sizes.inp_dim).double()
    fused.load_state_dict(ref.state_dict())
    return fused, ref


def model_pair(sizes):
    """(fused, reference) fp64 PoseNets with the reference's weights."""
    torch.manual_seed(0)
    ref = reference.PoseNet(sizes.nstack, sizes.inp_dim, sizes.joints).double()
    fused = PoseNet(sizes.nstack, sizes.inp_dim, sizes.joints).double()
    fused.load_state_dict(ref.state_dict())
    return fused, ref


def op_cases(sizes):
    g = _generator()
    n, c, m = sizes.batch, sizes.inp_dim, sizes.maps
    keypoints, visible = _keypoints(sizes, g), _visible(sizes, g)
    normal = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    fused_residual, reference_residual = _residual_pair(sizes)
    return [
        Case("upsample_add", ops.upsample_add, reference.upsample_add,
             {"low": normal(n, c, m // 2, m // 2), "skip": normal(n, c, m, m)}, ("low", "skip")),
        Case("max_pool2x2", ops.max_pool2x2, lambda x: F.max_pool2d(x, 2), {"x": normal(n, c, m, m)}, ("x",)),
        Case("render_heatmaps", ops.render_heatmaps, reference.render_heatmaps,
             {"keypoints": keypoints, "visible": visible}, options={"size": (m, m)}),
        Case("heatmap_loss", ops.heatmap_loss, in_accumulation_dtype(reference.heatmap_loss),
             {"preds": torch.rand(n, sizes.nstack, sizes.joints, m, m, generator=g, dtype=torch.float64),
              "keypoints": keypoints, "visible": visible}, ("preds",), {"per_stack": True}),
        Case("decode_heatmaps", ops.decode_heatmaps, in_accumulation_dtype(reference.decode_heatmaps),
             {"heatmaps": normal(n, sizes.joints, m, m)}),
        Case("Residual", fused_residual, reference_residual, {"x": normal(n, c // 2, m, m) * 2 + 0.5}, ("x",)),
    ]


# ------------------------------------------------------------------------------------- running

@dataclass
class Result:
    outputs: tuple
    grads: dict
    buffers: dict


def _tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def run(case, kind, dtype, device, layout=torch.contiguous_format, storage=None, grads_out=None, inputs=None):
    """Forward and (for differentiable inputs) backward of the ``kind`` ('fused' or 'reference')
    side in ``dtype`` on ``device``; float inputs are cast to ``dtype`` (``inputs``: others, fp64),
    4-d ones given ``layout``. ``storage``: the module's intermediate tensors as the kernels store them in that dtype."""
    fn = getattr(case, kind)
    module = None
    if isinstance(fn, torch.nn.Module):
        module = copy.deepcopy(fn).to(device=device, dtype=dtype, memory_format=layout)
        if storage is not None:
            round_stored_tensors(module, storage)
        fn = module
    leaves = {}
    for name, t in (inputs or case.inputs).items():
        t = t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
        t = t.contiguous(memory_format=layout) if t.dim() == 4 else t
        leaves[name] = t.detach().requires_grad_(name in case.differentiable)
    outputs = _tuple(fn(*leaves.values(), **(case.options or {})))
    tracked = {name: leaves[name] for name in case.differentiable}
    tracked.update({name: p for name, p in module.named_parameters() if p.requires_grad} if module is not None else {})
    grads = {}
    if tracked:
        if grads_out is None:
            grads_out = tuple(torch.randn(o.shape, generator=_generator(1), dtype=torch.float64) for o in outputs)
        live = [(o, g.to(device=device, dtype=o.dtype)) for o, g in zip(outputs, grads_out) if o.requires_grad]
        outs, gouts = zip(*live)
        found = torch.autograd.grad(outs, list(tracked.values()), gouts, allow_unused=True)
        grads = {name: g for name, g in zip(tracked, found) if g is not None}
    buffers = {k: v.clone() for k, v in module.named_buffers()} if module is not None else {}
    return Result(tuple(o.detach() for o in outputs), grads, buffers), grads_out


def judge(ours, eagers, exact, factor=EAGER_FACTOR, ulps=FLOOR_ULPS):
    """Every output, gradient (on the scale of all gradients) and buffer of ``ours`` against
    ``exact`` (fp64) relative to ``eagers``: a list of :class:`fasthg.accuracy.Judgement`."""
    fp64 = ours.outputs[0].dtype == torch.float64
    floor = FP64_TOLERANCE if fp64 else None
    verdicts = [against_eager(f"output {i}", got, [e.outputs[i] for e in eagers], exact.outputs[i].double(),
                              factor, ulps, floor=floor)
                for i, got in enumerate(ours.outputs)]
    grad_scale = magnitude(exact.grads.values()) or 1.0
    for name, want in exact.grads.items():
        verdicts.append(against_eager(f"grad {name}", ours.grads[name], [e.grads[name] for e in eagers], want,
                                      factor, ulps, grad_scale, floor))
    for name, want in exact.buffers.items():
        if want.is_floating_point():
            verdicts.append(against_eager(name, ours.buffers[name], [e.buffers[name] for e in eagers], want,
                                          factor, ulps, floor=floor))
        elif not torch.equal(ours.buffers[name], want.to(ours.buffers[name].device)):
            raise AssertionError(f"{name}: {ours.buffers[name].tolist()} != reference's {want.tolist()}")
    return verdicts


def parity(case, dtype, device):
    """``case`` in ``dtype`` judged against fp64 relative to eager in ``dtype`` (NCHW and channels_last)."""
    rounded = {k: t.to(dtype).double() if t.is_floating_point() else t for k, t in case.inputs.items()}
    ours, grads_out = run(case, "fused", dtype, device, torch.channels_last)
    exact, _ = run(case, "reference", torch.float64, device, grads_out=grads_out, inputs=rounded)
    if dtype == torch.float64:
        return judge(ours, [], exact)
    if dtype in (torch.float16, torch.bfloat16) and isinstance(case.reference, torch.nn.Module):
        # Gradients against the reference that stores its intermediate tensors as the kernels do,
        # so both decide the ReLUs on the same values (fasthg.accuracy.round_stored_tensors);
        # outputs and statistics against the plain one.
        stored, _ = run(case, "reference", torch.float64, device, storage=dtype, grads_out=grads_out, inputs=rounded)
        exact.grads = stored.grads
    eagers = [run(case, "reference", dtype, device, layout, grads_out=grads_out)[0]
              for layout in (torch.contiguous_format, torch.channels_last)]
    return judge(ours, eagers, exact)


def training_case(sizes):
    """A PoseNet training step as a :class:`Case`: the images in, the princeton loss against
    rendered targets out (its backward gives every parameter's gradient); running statistics as buffers."""
    fused, ref = model_pair(sizes)
    g = _generator(2)
    keypoints, visible = _keypoints(sizes, g), _visible(sizes, g)

    class Step(torch.nn.Module):
        def __init__(self, model, loss):
            super().__init__()
            self.model, self.loss = model, loss

        def forward(self, images):
            stacks = self.model(images)
            return stacks, self.loss(stacks.float(), keypoints.to(images.device), visible.to(images.device))

    images = torch.rand(sizes.batch, sizes.size, sizes.size, 3, generator=g, dtype=torch.float64)
    return Case(f"PoseNet training step ({sizes.nstack}-stack)", Step(fused, ops.heatmap_loss),
                Step(ref, reference.heatmap_loss), {"images": images})


# --------------------------------------------------------------------------------------- checks

def _outcome(verdicts):
    failed = [str(v) for v in verdicts if not v.passed]
    worst = max(verdicts, key=lambda v: v.error / v.bound if v.bound else float("inf"))
    return {"passed": not failed, "judged": len(verdicts), "failures": failed, "worst": str(worst)}


def parity_checks(sizes, device):
    checks = {}
    cases = [(case, sizes.op_dtypes) for case in op_cases(sizes)] + [(training_case(sizes), sizes.model_dtypes)]
    for case, dtypes in cases:
        for dtype in dtypes:
            checks[f"parity {case.name} {dtype}".replace("torch.", "")] = lambda case=case, dtype=dtype: _outcome(
                parity(case, dtype, device))
    return checks


def _bitwise(first, second):
    pairs = [*zip(first.outputs, second.outputs), *((first.grads[k], second.grads[k]) for k in first.grads),
             *((first.buffers[k], second.buffers[k]) for k in first.buffers)]
    differing = sum(not torch.equal(a, b) for a, b in pairs)
    return {"passed": differing == 0, "compared": len(pairs), "differing": differing}


def determinism(sizes, device):
    """Two identical training steps (of the Residual in the interpreter), bit for bit."""
    case = training_case(sizes) if sizes.whole_model_determinism else op_cases(sizes)[-1]
    dtype = sizes.model_dtypes[-1]
    return _bitwise(run(case, "fused", dtype, device)[0], run(case, "fused", dtype, device)[0])


def second_stream(sizes, device):
    """The Residual on a side stream, and on two streams at once, against the default stream's result."""
    case = op_cases(sizes)[-1]
    expected, _ = run(case, "fused", torch.bfloat16, device)
    streams = [torch.cuda.Stream(device) for _ in range(2)]
    results = []
    for stream in streams:
        stream.wait_stream(torch.cuda.current_stream(device))
    for _ in range(3):  # rounds of concurrent launches, each reducing into its own counters
        for stream in streams:
            with torch.cuda.stream(stream):
                results.append(run(case, "fused", torch.bfloat16, device)[0])
    torch.cuda.synchronize(device)
    outcomes = [_bitwise(expected, result) for result in results]
    return {"passed": all(o["passed"] for o in outcomes), "runs": len(outcomes),
            "differing": sum(o["differing"] for o in outcomes)}


def other_device(sizes, device):
    """The Residual on cuda:1 while cuda:0 is the current device, against cuda:0's result."""
    if torch.cuda.device_count() < 2:
        return {"skipped": "one CUDA device: the launch on cuda:1 was not run"}
    case = op_cases(sizes)[-1]
    with torch.cuda.device(0):
        return _bitwise(run(case, "fused", torch.bfloat16, torch.device("cuda", 0))[0],
                        run(case, "fused", torch.bfloat16, torch.device("cuda", 1))[0])


def graph_replay(sizes, device):
    """A bf16 training step captured in a CUDA graph: two replays, each from the same running
    statistics, equal the eager step bit for bit (so every replay saw reset arrival counters)."""
    fused, _ = model_pair(sizes)
    model = fused.to(device=device, dtype=torch.bfloat16, memory_format=torch.channels_last)
    images = torch.rand(sizes.batch, sizes.size, sizes.size, 3, generator=_generator(3)).to(device, torch.bfloat16)

    def step():
        for p in model.parameters():
            p.grad = None
        model(images).float().square().mean().backward()

    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):  # the eager warm-up allocates the capture stream's counters
        step()
    torch.cuda.current_stream(device).wait_stream(stream)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        step()

    def snapshot(after):
        model.load_state_dict(state)
        after()
        torch.cuda.synchronize(device)
        return Result((), {k: p.grad.clone() for k, p in model.named_parameters()},
                      {k: v.clone() for k, v in model.named_buffers()})

    eager = snapshot(step)
    replays = [snapshot(graph.replay) for _ in range(2)]
    outcomes = [_bitwise(eager, replay) for replay in replays]
    return {"passed": all(o["passed"] for o in outcomes), "replays": len(replays),
            "differing": sum(o["differing"] for o in outcomes)}


GPU_ONLY = {"second stream": second_stream, "cuda:1": other_device, "CUDA graph replay": graph_replay}


def all_checks(sizes, device):
    """{name: () -> outcome dict} in the order they run (GPU-only checks as not run off CUDA)."""
    checks = {**parity_checks(sizes, device), "determinism": lambda: determinism(sizes, device)}
    for name, check in GPU_ONLY.items():
        checks[name] = (lambda check=check: check(sizes, device)) if device.type == "cuda" else (lambda: {"skipped": NO_GPU})
    return checks


def run_check(check):
    """Runs one check: its outcome with ``seconds``; an exception is a failure, with its message."""
    start = time.perf_counter()
    try:
        outcome = check()
    except Exception as error:  # a crash of one check is that check's failure, and the others still run
        outcome = {"passed": False, "failures": [f"{type(error).__name__}: {error}"]}
    return {**outcome, "seconds": round(time.perf_counter() - start, 2)}


def _run_in_worker(name, sizes, device):
    """Runs the check called ``name`` with the Triton kernels in a worker process, on one torch
    thread (two workers do not share two cores four ways)."""
    torch.set_num_threads(1)
    with backend("triton"):
        return run_check(all_checks(sizes, device)[name])


def _whole_model_first(names):
    """``names`` with the whole-model checks (the longest, by far) first, so that a pool of
    workers starts them at once and runs the others beside them."""
    return sorted(names, key=lambda name: "PoseNet" not in name)


def run_checks(checks, names, sizes, device, jobs):
    """{name: outcome} of the checks ``names`` of ``checks`` (:func:`all_checks`), in that order,
    here or in ``jobs`` processes, which build their own (the CPU form: the interpreter is
    single-threaded, and the 1-stack training step alone takes most of the run); each printed as it ends."""
    def report(name, outcome):
        state = "not run" if "skipped" in outcome else "pass" if outcome["passed"] else "FAIL"
        print(f"{name}: {state} ({outcome['seconds']} s)", flush=True)
        return outcome

    if jobs == 1:
        with backend("triton"):
            return {name: report(name, run_check(checks[name])) for name in names}
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools mid-use
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, name, sizes, device): name for name in _whole_model_first(names)}
        done = {futures[f]: report(futures[f], f.result()) for f in concurrent.futures.as_completed(futures)}
    return {name: done[name] for name in names}


# -------------------------------------------------------------------------------------- timings

def _median_seconds(call, device, repeats=20, warmup=3):
    for _ in range(warmup):
        call()
    from bench.timings import CudaEventClock
    return statistics.median(CudaEventClock.seconds(call) for _ in range(repeats))


def _meta_traffic(case, kind, dtype):
    """(bytes, FLOPs, H100 roofline seconds) of one forward and backward of ``case``'s side, counted on meta."""
    from bench.accounting import GPU_ARCH
    from bench.counting import KernelCounter
    from bench.roofline import GPUS

    from .kernels import registry
    counter = KernelCounter()
    with registry.emulating(GPU_ARCH), counter:
        run(case, kind, dtype, torch.device("meta"), torch.channels_last)
    kernels = counter.kernels
    return sum(k.bytes for k in kernels), sum(k.flops for k in kernels), GPUS[0].step_seconds(kernels, dtype)


def op_timings(sizes, device):
    """Each fused op (forward and backward when differentiable) against the eager ops it replaces."""
    rows = []
    for case in op_cases(sizes):
        for dtype in (torch.bfloat16, torch.float32):
            row = {"op": case.name, "dtype": str(dtype).replace("torch.", "")}
            for kind, label in (("fused", "fasthg"), ("reference", "eager")):
                seconds = _median_seconds(lambda: run(case, kind, dtype, device, torch.channels_last), device)
                moved, flops, roofline = _meta_traffic(case, kind, dtype)
                row[label] = {"ms": seconds * 1e3, "TB/s": moved / seconds / 1e12, "TFLOP/s": flops / seconds / 1e12,
                              "roofline ms": roofline * 1e3}
            row["speed-up"] = row["eager"]["ms"] / row["fasthg"]["ms"]
            rows.append(row)
    return rows


def model_timings(sizes):
    """The benchmark's GPU section: eager, torch.compile (max-autotune) and fasthg, per network and dtype."""
    from bench.suite import timings_section
    from bench.workloads import Config
    sections = []
    for nstack in (2, sizes.nstack):
        for dtype in (torch.bfloat16, torch.float32):
            config = Config(nstack, sizes.batch, sizes.size, dtype, inp_dim=sizes.inp_dim, oup_dim=sizes.joints)
            sections.append(timings_section(config, "cuda", repeats=5, warmup=2, compile_options={"mode": "max-autotune"}))
    return sections


def speedups(sections):
    """"eager / fasthg" and "torch.compile / fasthg" median ratios, one line per configuration and workload."""
    lines = []
    for section in sections:
        for workload, variants in section["results"].items():
            fasthg = variants["fasthg"]["median"]
            lines.append(f"{section['config']}, {workload}: {variants['eager']['median'] / fasthg:.2f}x eager, "
                         f"{variants['torch.compile']['median'] / fasthg:.2f}x torch.compile")
    return lines


# -------------------------------------------------------------------------------------- command

def verdict(report):
    """The one-screen summary: every check passed or which failed, what did not run, the speed-ups."""
    checks = report["checks"]
    failed = [name for name, c in checks.items() if c.get("passed") is False]
    skipped = [f"{name} ({c['skipped']})" for name, c in checks.items() if "skipped" in c]
    ran = len(checks) - len(skipped)
    lines = [f"fasthg gpucheck on {report['device']} ({report['sizes']}): "
             + (f"PASSED, all {ran} checks that ran" if not failed else f"FAILED {len(failed)} of {ran} checks")]
    lines += [f"  FAIL {name}: {'; '.join(checks[name].get('failures', []))[:300]}" for name in failed]
    if report["device"] == "cpu":
        lines.append("  The GPU part did NOT run (no CUDA device): kernels ran in the Triton interpreter at small sizes.")
    lines += [f"  not run: {item}" for item in skipped]
    timings = report["timings"]
    lines += ([f"  timings: {timings['skipped']}"] if "skipped" in timings
              else ["  speed-ups (median):", *(f"    {line}" for line in speedups(timings["models"]))])
    lines.append(f"  {report['seconds']:.0f} s; details in gpucheck.md and gpucheck.json")
    return "\n".join(lines)


def markdown(report):
    lines = ["# fasthg gpucheck", "", f"`{report['command']}`, {report['date']}, {report['environment']}", "",
             "```", report["verdict"], "```", "", "| check | result | seconds | worst / details |", "|---|---|---|---|"]
    for name, c in report["checks"].items():
        result = "not run" if "skipped" in c else ("pass" if c["passed"] else "FAIL")
        details = c.get("skipped") or "; ".join(c.get("failures", [])) or c.get("worst", "") or \
            ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("passed", "seconds"))
        lines.append(f"| {name} | {result} | {c['seconds']} | {details} |")
    if "ops" in report["timings"]:
        lines += ["", "| op | dtype | fasthg ms | eager ms | speed-up | fasthg TB/s | fasthg TFLOP/s | roofline ms |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['op']} | {r['dtype']} | {r['fasthg']['ms']:.3f} | {r['eager']['ms']:.3f} | {r['speed-up']:.2f}x | "
                  f"{r['fasthg']['TB/s']:.2f} | {r['fasthg']['TFLOP/s']:.1f} | {r['fasthg']['roofline ms']:.3f} |"
                  for r in report["timings"]["ops"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fasthg.gpucheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for gpucheck.json and gpucheck.md")
    parser.add_argument("--device", default="auto", help="the GPU to check: auto, cuda or cuda:N (cpu: the interpreter form)")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="only the checks whose name contains one of these")
    parser.add_argument("--no-timings", action="store_true", help="skip the timings")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="processes for the CPU form's checks (default: 2 where there are 2 cores; a GPU runs them in one)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be a positive number of processes, got {args.jobs}")
    device = use_device(args.device)
    if device.type != "cuda" and not interpreting():
        rerun("fasthg.gpucheck", interpret=True)  # the kernels must be defined for the interpreter
    sizes = FULL if device.type == "cuda" else INTERPRETER
    start = time.perf_counter()
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity without TF32
    checks = all_checks(sizes, device)
    names = [name for name in checks if not args.only or any(text in name for text in args.only)]
    jobs = 1 if device.type == "cuda" else args.jobs or min(2, os.cpu_count() or 1)
    results = run_checks(checks, names, sizes, device, jobs)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32  # timings: as the user runs
    if args.no_timings or device.type != "cuda":
        timings = {"skipped": "--no-timings" if args.no_timings else "not measured: no CUDA device here"}
    else:
        timings = {"ops": op_timings(sizes, device), "models": model_timings(sizes)}
    report = {"command": "python -m fasthg.gpucheck" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "environment": f"Python {platform.python_version()}, torch {torch.__version__}, "
                             + (torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"),
              "device": str(device), "sizes": f"batch {sizes.batch}, {sizes.size}x{sizes.size}, inp_dim {sizes.inp_dim}, "
                                              f"{sizes.nstack}-stack", "checks": results, "timings": timings}
    report["seconds"] = time.perf_counter() - start
    report["passed"] = all(c.get("passed", True) for c in results.values())
    report["verdict"] = verdict(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpucheck.json").write_text(json.dumps(report, indent=1))
    (args.out / "gpucheck.md").write_text(markdown(report))
    print(report["verdict"])
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    cli.run(main)
