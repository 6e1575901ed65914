"""Static GPU resources of every shipped kernel configuration, from the ahead-of-time build's report.

``python -m fasthg.aot --out DIR`` (run by ``make aot`` into ``build/aot/kernels``) compiles each
configuration of the kernel registry for sm_80 and sm_90 with no GPU and writes ``DIR/resources.json``:
registers per thread, spill bytes, shared memory per block and an occupancy estimate. The benchmark
reads that report; it does not rebuild it (a full build takes minutes). A recorded launch finds its
entry by its registry configuration's label (:func:`configuration`).
"""
import json
from collections import defaultdict
from pathlib import Path

from fasthg.aot import LIMITS
from fasthg.kernels.registry import REGISTRY

DEFAULT_REPORT = Path("build/aot/kernels/resources.json")
BUILD_COMMAND = "make aot  (or: python -m fasthg.aot --out build/aot/kernels)"
# Constexprs the launchers set only in the interpreter (UPCAST: bf16 products in fp32); the GPU
# runs, and the AOT report compiles, their registry values.
INTERPRETER_ONLY = ("UPCAST",)


def read_resources(path=DEFAULT_REPORT):
    """The report's entries (one dict per configuration and architecture), or None when it does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def summarise(entries):
    """One row per (kernel, dtype): its configurations and, per architecture, the most registers,
    spill bytes and shared memory of any of them and the range of their occupancy."""
    groups = defaultdict(list)
    for entry in entries:
        groups[entry["kernel"], entry["dtype"]].append(entry)
    rows = []
    for (kernel, dtype), group in groups.items():
        row = {"kernel": kernel, "dtype": dtype, "configurations": len({e["label"] for e in group}),
               "errors": sum(bool(e["error"]) for e in group)}
        for arch in sorted({e["arch"] for e in group}):
            on_arch = [e for e in group if e["arch"] == arch and not e["error"]]
            row[f"sm_{arch}"] = {
                "registers": max((e["registers"] for e in on_arch), default=0),
                "spill_bytes": max((e["spill_bytes"] for e in on_arch), default=0),
                "shared_bytes": max((e["shared_bytes"] for e in on_arch), default=0),
                "occupancy": [min((e["occupancy"] for e in on_arch), default=0.0),
                              max((e["occupancy"] for e in on_arch), default=0.0)],
            }
        rows.append(row)
    return rows


def configuration(launch):
    """The registry label of the configuration a :class:`bench.launches.TritonLaunch` runs: its
    kernel, its tensors' dtype and every constexpr the configuration sets."""
    candidates = [config for config in REGISTRY if config.kernel.fn.__name__ == launch.kernel and all(
        launch.arguments[name] == value for name, value in config.constexprs.items() if name not in INTERPRETER_ONLY)]
    typed = [name for name, kind in candidates[0].signature.items() if kind == "*{dtype}"] if candidates else []
    if typed:
        candidates = [config for config in candidates if config.dtype == launch.arguments[typed[0]].dtype]
    if len(candidates) != 1:
        raise LookupError(f"{launch.kernel}: {len(candidates)} registry configurations match the launch's constexprs")
    return candidates[0].label


def resident_programs(report, arch):
    """{configuration label: programs resident per SM} on sm_``arch``: the report's occupancy (the
    fraction of the SM's warp slots its resident blocks fill) x warps per SM / warps per program."""
    warps = LIMITS[arch].warps_per_sm
    return {entry["label"]: round(entry["occupancy"] * warps / entry["num_warps"])
            for entry in report if entry["arch"] == arch and not entry["error"]}
