"""The benchmark's sections, each returning plain data (what ``results/bench.json`` holds).

* :func:`accounting_section`: exact counts on the meta device, the roofline and the wave model,
  per configuration and workload, both sides, their ratios, a per-op breakdown and the targets.
* :func:`resources_section`: the AOT build's static resources per kernel.
* :func:`timings_section`: wall-clock timings on the CPU, or CUDA events and peak memory on a GPU.
"""
import torch

from .accounting import account
from .resources import BUILD_COMMAND, read_resources, summarise
from .roofline import GPUS
from .timings import CudaEventClock, WallClock, cuda_peak_bytes, time_variants
from .wave import WaveModel
from .work import longest, median, merged, programs
from .workloads import SIDES, WORKLOADS


def wave_key(gpu):
    """The results' key of a GPU's wave-model time (seconds)."""
    return f"{gpu.name} wave"


def efficiency_key(gpu):
    """The results' key of a GPU's parallel efficiency: roofline time ÷ wave-model time."""
    return f"{gpu.name} efficiency"


METRICS = ("launches", "bytes", "flops", "saved_bytes", *(gpu.name for gpu in GPUS), *(wave_key(gpu) for gpu in GPUS))
# fasthg / eager at the target configuration (8-stack, batch 16, 256x256, bf16 training step), from issue 9.
TARGETS = {"launches": 0.40, "bytes": 0.45, "saved_bytes": 0.55}
TARGET_CONFIG = dict(nstack=8, batch=16, size=256, dtype="bf16", workload="training step")


def _category(kernel):
    if kernel.triton:
        return "Triton kernels of fasthg ops"
    return "aten ops inside fasthg ops" if kernel.op.startswith("fasthg::") else "aten ops"


def _totals(kernels, dtype, waves):
    """Counts, roofline times and, per :class:`WaveModel` in ``waves``, the wave time and parallel
    efficiency of ``kernels``; with Triton launches among them, their programs and the longest and
    median program's work (tile steps)."""
    totals = {"launches": len(kernels), "bytes": sum(k.bytes for k in kernels), "flops": sum(k.flops for k in kernels),
              **{gpu.name: gpu.step_seconds(kernels, dtype) for gpu in GPUS}}
    for wave in waves:
        totals[wave_key(wave.gpu)] = wave.step_seconds(kernels, dtype)
        totals[efficiency_key(wave.gpu)] = totals[wave.gpu.name] / totals[wave_key(wave.gpu)]
    classes = merged(kernel.work for kernel in kernels if kernel.triton)
    if classes:
        totals.update(programs=programs(classes), longest=longest(classes), median=median(classes))
    return totals


def _grouped(kernels, key, dtype, waves):
    groups = {}
    for kernel in kernels:
        groups.setdefault(key(kernel), []).append(kernel)
    rows = [{"label": label, **_totals(group, dtype, waves)} for label, group in groups.items()]
    return sorted(rows, key=lambda row: -row[GPUS[0].name])


def _side(config, workload, side, waves):
    result = account(config, workload, side)
    return {**_totals(result.kernels, config.dtype, waves), "saved_bytes": result.saved_bytes,
            "categories": _grouped(result.kernels, _category, config.dtype, waves),
            "breakdown": _grouped(result.kernels, lambda kernel: kernel.label, config.dtype, waves)}


def _ratio(fasthg, eager):
    return fasthg / eager if eager else None


def accounting_section(configs, report):
    """One entry per (configuration, workload): both sides' totals, their ratios (fasthg / eager), breakdowns.

    ``report``: the AOT build's resource entries, for the wave model's resident programs; without
    one (None) the entries have no wave-model times and their ratios are None.
    """
    waves = [WaveModel(gpu, report) for gpu in GPUS] if report is not None else []
    entries = []
    for config in configs:
        for workload in WORKLOADS:
            sides = {side: _side(config, workload, side, waves) for side in SIDES}
            entries.append({"nstack": config.nstack, "batch": config.batch, "size": config.size, "inp_dim": config.inp_dim,
                            "dtype": config.dtype_name, "workload": workload, "sides": sides,
                            "ratios": {m: _ratio(sides["fasthg"].get(m), sides["eager"].get(m)) for m in METRICS}})
    return entries


def target_entry(entries):
    """The entry of the target configuration, or None when it was not measured (--quick)."""
    return next((e for e in entries if all(e[key] == value for key, value in TARGET_CONFIG.items())), None)


def focus_entry(entries):
    """The entry the report details: the target configuration's, or the last training step measured."""
    return target_entry(entries) or [e for e in entries if e["workload"] == TARGET_CONFIG["workload"]][-1]


def wave_headline(entry):
    """One line per GPU of the wave model at ``entry``: the step's parallel efficiency, its wave-model
    time and that time ÷ eager's roofline time (eager's cuDNN kernels taken as filling the GPU);
    [] without a wave model (no AOT report)."""
    fasthg, eager = entry["sides"]["fasthg"], entry["sides"]["eager"]
    return [f"{gpu.name}: parallel efficiency {fasthg[efficiency_key(gpu)]:.2f}, wave-model step {fasthg[wave_key(gpu)] * 1e3:.2f} ms "
            f"= {fasthg[wave_key(gpu)] / eager[gpu.name]:.2f}x eager's roofline {eager[gpu.name] * 1e3:.2f} ms"
            for gpu in GPUS if wave_key(gpu) in fasthg]


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
