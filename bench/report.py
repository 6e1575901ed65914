"""The benchmark's results as Markdown tables and a bar chart of the fasthg / eager ratios."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fasthg.kernels.registry import TRITON_TYPE  # noqa: E402

from .roofline import GPUS, LAUNCH_OVERHEAD_SECONDS  # noqa: E402
from .suite import TARGET_CONFIG, TARGETS, efficiency_key, focus_entry, wave_headline, wave_key  # noqa: E402
from .timings import VARIANTS  # noqa: E402

GB, TFLOP, MS = 1e9, 1e12, 1e3
METRIC_NAMES = {"launches": "launches", "bytes": "bytes", "flops": "FLOPs", "saved_bytes": "saved activations",
                **{gpu.name: f"{gpu.name} model" for gpu in GPUS}, **{wave_key(gpu): f"{gpu.name} wave model" for gpu in GPUS}}


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def _ratio(value):
    return "–" if value is None else f"{value:.3f}x"


def _three(entry, metric, scale, digits):
    eager, fasthg = entry["sides"]["eager"][metric], entry["sides"]["fasthg"][metric]
    return [f"{eager / scale:,.{digits}f}", f"{fasthg / scale:,.{digits}f}", _ratio(entry["ratios"][metric])]


def _key(entry):
    return [entry["nstack"], entry["dtype"], entry["workload"]]


def accounting_tables(entries):
    counts = _table(
        ["nstack", "dtype", "workload", "launches eager", "fasthg", "ratio", "GB eager", "fasthg", "ratio",
         "TFLOP eager", "fasthg", "ratio", "saved GB eager", "fasthg", "ratio"],
        [_key(e) + _three(e, "launches", 1, 0) + _three(e, "bytes", GB, 2) + _three(e, "flops", TFLOP, 3)
         + _three(e, "saved_bytes", GB, 2) for e in entries])
    header = ["nstack", "dtype", "workload"]
    for gpu in GPUS:
        header += [f"{gpu.name} eager ms", "fasthg ms", "ratio"]
    roofline = _table(header, [_key(e) + [cell for gpu in GPUS for cell in _three(e, gpu.name, 1 / MS, 2)]
                               for e in entries])
    return counts, roofline


def _breakdown_rows(rows, code=True):
    return [[f"`{r['label']}`" if code else r["label"], r["launches"], f"{r['bytes'] / GB:.3f}", f"{r['flops'] / TFLOP:.3f}",
             f"{r[GPUS[0].name] * MS:.2f}"] for r in rows]


def breakdown_tables(entry):
    header = ["launches", "GB", "TFLOP", f"{GPUS[0].name} model ms"]
    parts = []
    for side in ("eager", "fasthg"):
        categories = entry["sides"][side]["categories"]
        if len(categories) > 1:
            parts.append(f"**{side}**, by kind of kernel:\n\n" + _table(["kind"] + header, _breakdown_rows(categories, code=False)))
        parts.append(f"**{side}**, by op (a fasthg op's kernels as `op / kernel`), by modelled {GPUS[0].name} time:\n\n"
                     + _table(["op / kernel"] + header, _breakdown_rows(entry["sides"][side]["breakdown"])))
    return "\n\n".join(parts)


def wave_tables(entries, focus):
    """The wave model per entry (parallel efficiency, wave ms, ÷ eager's roofline ms, per GPU) and
    per Triton op / kernel of the ``focus`` entry; None without a wave model (no AOT report)."""
    if wave_key(GPUS[0]) not in focus["sides"]["fasthg"]:
        return None
    header = ["nstack", "dtype", "workload"]
    for gpu in GPUS:
        header += [f"{gpu.name} efficiency", "wave ms", "÷ eager roofline"]
    steps = _table(header, [_key(e) + [cell for gpu in GPUS for cell in (
        f"{e['sides']['fasthg'][efficiency_key(gpu)]:.2f}", f"{e['sides']['fasthg'][wave_key(gpu)] * MS:.2f}",
        _ratio(e["sides"]["fasthg"][wave_key(gpu)] / e["sides"]["eager"][gpu.name]))] for e in entries])
    rows = sorted((r for r in focus["sides"]["fasthg"]["breakdown"] if "programs" in r), key=lambda r: -r[wave_key(GPUS[0])])
    header = ["op / kernel", "launches", "programs", "longest", "median", "longest ÷ median"]
    for gpu in GPUS:
        header += [f"{gpu.name} efficiency", "roofline ms", "wave ms"]
    ops = _table(header, [[f"`{r['label']}`", r["launches"], f"{r['programs']:,}", f"{r['longest']:,}", f"{r['median']:,}",
                           f"{r['longest'] / r['median']:.1f}"]
                          + [cell for gpu in GPUS for cell in (f"{r[efficiency_key(gpu)]:.2f}", f"{r[gpu.name] * MS:.2f}",
                                                                 f"{r[wave_key(gpu)] * MS:.2f}")] for r in rows])
    return steps, ops


def resources_table(section):
    if "missing" in section:
        return section["missing"]
    archs = sorted({key for row in section["rows"] for key in row if key.startswith("sm_")})
    header = ["kernel", "dtype", "configs"] + [f"{arch} {what}" for arch in archs
                                               for what in ("max regs", "max spill B", "max smem KB", "occupancy")]
    rows = []
    for row in sorted(section["rows"], key=lambda row: (row["kernel"], row["dtype"])):
        failed = f" ({row['errors']} failed)" if row["errors"] else ""
        cells = [f"`{row['kernel']}`", row["dtype"], f"{row['configurations']}{failed}"]
        for arch in archs:
            a = row[arch]
            low, high = a["occupancy"]
            cells += [a["registers"], a["spill_bytes"], f"{a['shared_bytes'] / 1024:.1f}",
                      f"{low:.0%}" if low == high else f"{low:.0%}–{high:.0%}"]
        rows.append(cells)
    return f"From `{section['report']}`.\n\n" + _table(header, rows)


def timings_table(section):
    results = section["results"]
    has_memory = any("peak_bytes" in v for workload in results.values() for v in workload.values())
    header = ["workload"] + [f"{variant} median ms (min)" for variant in VARIANTS]
    header += ["torch.compile ÷ eager", "fasthg ÷ eager"] + (["peak GB eager / compile / fasthg"] if has_memory else [])
    rows = []
    for workload, variants in results.items():
        row = [workload] + [f"{variants[v]['median'] * MS:.1f} ({variants[v]['min'] * MS:.1f})" for v in VARIANTS]
        row += [_ratio(variants[v]["median"] / variants["eager"]["median"]) for v in ("torch.compile", "fasthg")]
        if has_memory:
            row.append(" / ".join(f"{variants[v]['peak_bytes'] / GB:.2f}" for v in VARIANTS))
        rows.append(row)
    options = ", ".join(f"{k}={v!r}" for k, v in section["compile_options"].items()) or "defaults"
    threads = f"{section['threads']} CPU thread" + ("s" if section["threads"] != 1 else "")
    return (f"{section['config']} on {section['device']} ({threads}); {section['clock']}, "
            f"{section['warmup']} warm-up and "
            f"{section['repeats']} timed repeats per variant, taking turns; torch.compile({options}).\n\n" + _table(header, rows))


TARGETS_TITLE = "### Targets (8-stack, batch 16, 256x256, bf16 training step, fasthg ÷ eager)"


def targets_table(checked):
    return _table(["metric", "target", "measured", "met"],
                  [[METRIC_NAMES[t["metric"]], f"≤ {t['target']:.2f}x", _ratio(t["measured"]), "yes" if t["met"] else "**no**"]
                   for t in checked])


def headline_tables(results):
    """What ``python -m bench`` prints: the exact accounting of every configuration, and the targets
    where the target configuration was counted."""
    parts = ["Exact accounting on the meta device (fasthg ÷ eager):", accounting_tables(results["accounting"])[0]]
    if results["targets"]:
        parts += [TARGETS_TITLE.removeprefix("### "), targets_table(results["targets"])]
    return "\n\n".join(parts)


def markdown(results):
    entries = results["accounting"]
    counts, roofline = accounting_tables(entries)
    focus = focus_entry(entries)
    first = entries[0]
    overhead_us = LAUNCH_OVERHEAD_SECONDS * 1e6
    gpus = "; ".join(f"{g.name}: {g.bandwidth / 1e12:g} TB/s, "
                     + ", ".join(f"{TRITON_TYPE[dtype]} {peak / TFLOP:g} TFLOP/s" for dtype, peak in g.peak_flops.items())
                     for g in GPUS)
    parts = [
        "# fasthg benchmarks",
        f"Produced by `{results['command']}` on {results['date']} ({results['environment']}).",
        "## 1. Exact accounting on the meta device",
        f"Princeton's PoseNet (inp_dim {first['inp_dim']}), batch {first['batch']}, {first['size']}x{first['size']} NHWC "
        "images. *Training step*: forward, the princeton loss (MSE of the (N, nstack, 16, H/4, W/4) heatmaps against "
        "a target) and backward; *inference*: eval-mode forward "
        "without autograd. **eager** is `fasthg.reference.PoseNet` in eager PyTorch, one kernel per aten op: a lower "
        "bound (cuDNN's convolution backward alone runs a dgrad and a wgrad kernel). **fasthg** is `fasthg.PoseNet`: "
        "the Triton launches its custom ops make (recorded from their code at the GPU tiles, and equal to each op's "
        "declared `KERNEL_LAUNCHES`), plus every aten op outside and inside them. Bytes: the tensors each kernel "
        "reads and writes, each once (perfect caching of re-reads, both sides). FLOPs: 2 x multiply-adds of "
        "convolutions (forward, dgrad, wgrad). Saved: activations autograd keeps for backward at the end of the "
        "forward (the peak), parameters and buffers excluded. Ratios are fasthg ÷ eager.",
        counts,
        "### Roofline model: a lower bound, not a measurement",
        f"Per kernel max(bytes / bandwidth, FLOPs / peak) + {overhead_us:g} µs launch overhead, summed over the step "
        f"({gpus}; fp32 at the CUDA-core rate, though convolutions would use TF32 tensor cores).",
        roofline,
        "![fasthg ÷ eager per metric; measured time ratios in the last panel](ratios.png)",
        "### Wave model: launches that cannot fill the GPU",
    ]
    waves = wave_tables(entries, focus)
    if waves is None:
        parts.append(f"Not modelled: no AOT resource report at `{results['resources']['report']}` (build it with `make aot`).")
    else:
        steps, ops = waves
        sms = "; ".join(f"{g.name} {g.sms} SMs" for g in GPUS)
        parts += [
            "The roofline assumes every launch keeps all SMs busy. A GPU runs a launch's programs concurrently, "
            "R of them per SM (R from the AOT report's occupancy), so a launch of total work W (tile steps: "
            "iterations of its programs' innermost loops, from the kernels' trip counts, `bench/work.py`) whose "
            "longest program does L steps takes max(W / slots, L) steps on SMs x R slots: wave time = roofline "
            f"time x max(1, L x slots / W) + {overhead_us:g} µs ({sms}). Aten kernels (all of eager's) are taken "
            "as filling the GPU. Parallel efficiency = roofline time ÷ wave time; `tests/test_wave_model.py` checks "
            "each kernel's per-program work against the interpreter's loop counts.",
            steps,
            f"{focus['nstack']}-stack, {focus['dtype']}, {focus['workload']}: "
            + "; ".join(wave_headline(focus)) + ". Per Triton op / kernel (programs, and the work of the longest and "
            "median program in tile steps, over all the op's launches), by wave time:",
            ops,
        ]
    if results["targets"]:
        parts += [TARGETS_TITLE, targets_table(results["targets"])]
    parts += [f"### Where the kernels go: {focus['nstack']}-stack, {focus['dtype']}, {focus['workload']}", breakdown_tables(focus),
              "## 2. Static GPU resources (ahead-of-time build, no GPU needed)", resources_table(results["resources"]),
              "## 3. CPU timings", timings_table(results["cpu_timings"]),
              "fasthg's `auto` backend runs PyTorch's own kernels on CPU tensors (the fused Triton kernels need a GPU; "
              "in eval mode with bn2 and bn3 folded into conv1 and conv2): these timings compare that CPU path, not "
              "the fused kernels. Two CPU cores shared with other work: compare medians and minima, not single runs.",
              "Heatmap rendering against a per-joint NumPy loop: `python -m pytest bench/test_heatmap_render.py` (pytest-benchmark, both side by side; results/heatmap_render.json).",
              "## 4. GPU timings"]
    gpu = results["gpu_timings"]
    parts += [gpu["skipped"]] if "skipped" in gpu else [timings_table(section) for section in gpu["sections"]]
    return "\n\n".join(parts) + "\n"


def chart(results, path):
    """Grouped bars of fasthg ÷ eager per metric, one panel per workload, targets marked; timings in a last panel."""
    entries = results["accounting"]
    workloads = list(dict.fromkeys(e["workload"] for e in entries))
    timing_sections = [results["cpu_timings"]] + results["gpu_timings"].get("sections", [])
    figure, axes = plt.subplots(1, len(workloads) + 1, figsize=(6 * (len(workloads) + 1), 4.5), squeeze=False)
    for axis, workload in zip(axes[0], workloads):
        chosen = [e for e in entries if e["workload"] == workload]
        metrics = [m for m in METRIC_NAMES if any(e["ratios"][m] is not None for e in chosen)]
        width = 0.8 / len(chosen)
        for i, entry in enumerate(chosen):
            values = [entry["ratios"][m] or 0.0 for m in metrics]
            axis.bar([x + i * width for x in range(len(metrics))], values, width, label=f"{entry['nstack']}-stack {entry['dtype']}")
        if workload == TARGET_CONFIG["workload"]:
            for x, metric in enumerate(metrics):
                if metric in TARGETS:
                    axis.hlines(TARGETS[metric], x - width / 2, x + 0.8 - width / 2, colors="black", linestyles="dashed")
        axis.set_xticks([x + 0.4 - width / 2 for x in range(len(metrics))], [METRIC_NAMES[m] for m in metrics], rotation=30, ha="right")
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set_ylim(0, 1.4 * max(1.0, max(entry["ratios"][m] or 0.0 for entry in chosen for m in metrics)))
        axis.set_title(f"{workload}: fasthg ÷ eager" + (" (dashed: targets)" if workload == TARGET_CONFIG["workload"] else ""))
        axis.legend(fontsize=8, loc="upper left", ncol=2)
    axis = axes[0][-1]
    labels, values = [], []
    for section in timing_sections:
        for workload, variants in section["results"].items():
            for variant in ("torch.compile", "fasthg"):
                labels.append(f"{section['device']} {workload}\n{variant}")
                values.append(variants[variant]["median"] / variants["eager"]["median"])
    axis.bar(range(len(values)), values, color=["tab:purple" if "compile" in label else "tab:green" for label in labels])
    axis.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_title("measured time ÷ eager (median)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
