"""Wall-clock timings of both sides and of the reference under ``torch.compile``, side by side.

Three variants run the same workloads with the same weights and inputs: ``eager`` (the reference
PoseNet), ``torch.compile`` (the reference compiled; ``mode="max-autotune"`` on a GPU) and
``fasthg`` (its PoseNet with the ``auto`` backend: Triton kernels on CUDA, PyTorch's own kernels
on CPU). After warm-up (which includes compiling), the variants take turns, one repeat each, so a
machine shared with other work slows them alike; min and median over the repeats are reported.

The CPU and the GPU share the loop; only the clock (``time.perf_counter`` or CUDA events) and the
peak-memory probe (``torch.cuda.max_memory_allocated``) differ.
"""
import statistics
import time

import torch

from .workloads import WORKLOADS, build, inputs

VARIANTS = ("eager", "torch.compile", "fasthg")


class WallClock:
    """Seconds of a CPU call."""
    name = "time.perf_counter"

    @staticmethod
    def seconds(function):
        start = time.perf_counter()
        function()
        return time.perf_counter() - start


class CudaEventClock:
    """Seconds of the GPU work a call enqueues, between two CUDA events."""
    name = "CUDA events"

    @staticmethod
    def seconds(function):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def cuda_peak_bytes(function):
    """The most memory the CUDA caching allocator held during a call."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    function()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def time_variants(config, device, clock, repeats, warmup, compile_options, peak_bytes=None):
    """{workload: {variant: {"min", "median", "seconds" (each repeat), "peak_bytes" (with a probe)}}}."""
    models = build(config, device)
    images, target = inputs(config, device)
    variants = {"eager": models["eager"], "torch.compile": torch.compile(models["eager"], **compile_options),
                "fasthg": models["fasthg"]}
    results = {}
    for workload, (training, step) in WORKLOADS.items():
        calls = {}
        for name, model in variants.items():
            model.train(training)
            calls[name] = lambda model=model: step(model, images, target)
            for _ in range(warmup):
                calls[name]()
        seconds = {name: [] for name in variants}
        for _ in range(repeats):
            for name, call in calls.items():
                seconds[name].append(clock.seconds(call))
        results[workload] = {name: {"min": min(times), "median": statistics.median(times), "seconds": times,
                                    **({"peak_bytes": peak_bytes(calls[name])} if peak_bytes else {})}
                             for name, times in seconds.items()}
    return results
