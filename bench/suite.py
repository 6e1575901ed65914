"""The benchmark's sections, each returning plain data (what ``results/bench.json`` holds).

* :func:`accounting_section`: exact counts on the meta device and the roofline model, per
  configuration and workload, both sides, their ratios, a per-op breakdown and the targets.
* :func:`resources_section`: the AOT build's static resources per kernel.
* :func:`timings_section`: wall-clock timings on the CPU, or CUDA events and peak memory on a GPU.
"""
import torch

from .accounting import account
from .resources import BUILD_COMMAND, read_resources, summarise
from .roofline import GPUS
from .timings import CudaEventClock, WallClock, cuda_peak_bytes, time_variants
from .workloads import SIDES, WORKLOADS

METRICS = ("launches", "bytes", "flops", "saved_bytes", *(gpu.name for gpu in GPUS))
# fasthg / eager at the target configuration (8-stack, batch 16, 256x256, bf16 training step), from issue 9.
TARGETS = {"launches": 0.40, "bytes": 0.45, "saved_bytes": 0.55}
TARGET_CONFIG = dict(nstack=8, batch=16, size=256, dtype="bf16", workload="training step")


def _category(kernel):
    if kernel.triton:
        return "Triton kernels of fasthg ops"
    return "aten ops inside fasthg ops" if kernel.op.startswith("fasthg::") else "aten ops"


def _totals(kernels, dtype):
    return {"launches": len(kernels), "bytes": sum(k.bytes for k in kernels), "flops": sum(k.flops for k in kernels),
            **{gpu.name: gpu.step_seconds(kernels, dtype) for gpu in GPUS}}


def _grouped(kernels, key, dtype):
    groups = {}
    for kernel in kernels:
        groups.setdefault(key(kernel), []).append(kernel)
    rows = [{"label": label, **_totals(group, dtype)} for label, group in groups.items()]
    return sorted(rows, key=lambda row: -row[GPUS[0].name])


def _side(config, workload, side):
    result = account(config, workload, side)
    return {**_totals(result.kernels, config.dtype), "saved_bytes": result.saved_bytes,
            "categories": _grouped(result.kernels, _category, config.dtype),
            "breakdown": _grouped(result.kernels, lambda kernel: kernel.label, config.dtype)}


def _ratio(fasthg, eager):
    return fasthg / eager if eager else None


def accounting_section(configs):
    """One entry per (configuration, workload): both sides' totals, their ratios (fasthg / eager), breakdowns."""
    entries = []
    for config in configs:
        for workload in WORKLOADS:
            sides = {side: _side(config, workload, side) for side in SIDES}
            entries.append({"nstack": config.nstack, "batch": config.batch, "size": config.size, "inp_dim": config.inp_dim,
                            "dtype": config.dtype_name, "workload": workload, "sides": sides,
                            "ratios": {m: _ratio(sides["fasthg"][m], sides["eager"][m]) for m in METRICS}})
    return entries


def target_entry(entries):
    """The entry of the target configuration, or None when it was not measured (--quick)."""
    return next((e for e in entries if all(e[key] == value for key, value in TARGET_CONFIG.items())), None)


def targets(entries):
    """The issue's targets checked at the target configuration, or [] when it was not measured."""
    entry = target_entry(entries)
    if entry is None:
        return []
    return [{"metric": metric, "target": target, "measured": entry["ratios"][metric], "met": entry["ratios"][metric] <= target}
            for metric, target in TARGETS.items()]


def resources_section(path):
    entries = read_resources(path)
    if entries is None:
        return {"report": str(path), "missing": f"no report at {path}: build it with {BUILD_COMMAND}"}
    return {"report": str(path), "rows": summarise(entries)}


def timings_section(config, device, repeats, warmup, compile_options):
    """Timings of the three variants at ``config`` on ``device`` ('cpu' or 'cuda')."""
    on_gpu = device == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # eager PyTorch at its best: cuDNN picks its fastest algorithms
    clock = CudaEventClock if on_gpu else WallClock
    results = time_variants(config, device, clock, repeats, warmup, compile_options, cuda_peak_bytes if on_gpu else None)
    return {"config": config.describe(), "device": device, "threads": torch.get_num_threads(), "clock": clock.name,
            "repeats": repeats, "warmup": warmup, "compile_options": compile_options, "results": results}
