"""``python -m bench`` (``make bench``): what fasthg saves against eager PyTorch, in one run.

    python -m bench                 # full: accounting at 2 and 8 stacks, batch 16, 256x256, fp32 and bf16
    python -m bench --quick         # reduced sizes, a smoke test (CI runs it in tests/test_bench_run.py)

Writes ``results/bench.json``, ``results/bench.md`` and ``results/ratios.png`` (``--out``); a full
run also refreshes the committed copies ``bench/RESULTS.md`` and ``bench/ratios.png`` that the
README quotes. Sections: exact accounting on the meta device with a roofline model (no GPU
needed), static GPU resources from the AOT report, CPU timings, and GPU timings when CUDA is
available.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import torch
import triton

from .report import chart, headline_tables, markdown
from .resources import DEFAULT_REPORT, read_resources
from .suite import accounting_section, focus_entry, resources_section, targets, timings_section, wave_headline
from .workloads import Config

PUBLISHED = Path(__file__).parent  # bench/RESULTS.md and bench/ratios.png, committed
DTYPES = (torch.float32, torch.bfloat16)


def _configurations(quick):
    """(accounting configurations, CPU timing configuration, GPU timing configurations)."""
    if quick:
        accounting = [Config(nstack, 2, 64, dtype, inp_dim=32) for nstack in (1, 2) for dtype in DTYPES]
        return accounting, Config(1, 2, 64, torch.float32, inp_dim=16, oup_dim=4), accounting[-1:]
    accounting = [Config(nstack, 16, 256, dtype) for nstack in (2, 8) for dtype in DTYPES]
    return accounting, Config(2, 4, 128, torch.float32, inp_dim=64), accounting


def _environment():
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"Python {platform.python_version()}, torch {torch.__version__}, triton {triton.__version__}, "
            f"{os.cpu_count()} CPU cores, {gpu}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes and repeats (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for bench.json, bench.md, ratios.png")
    parser.add_argument("--resources", type=Path, default=DEFAULT_REPORT, help="the AOT build's resources.json")
    parser.add_argument("--repeats", type=int, help="timed repeats per variant (default 7, quick 2)")
    parser.add_argument("--warmup", type=int, help="untimed calls per variant first, compiling included (default 2, quick 1)")
    parser.add_argument("--threads", type=int, help="CPU threads for the CPU timings (default torch's, quick 1: with "
                                                    "another busy process, two OpenMP threads can run 100x slower than one)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    warmup = args.warmup or (1 if args.quick else 2)
    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
    accounting_configs, cpu_config, gpu_configs = _configurations(args.quick)

    entries = accounting_section(accounting_configs, read_resources(args.resources))
    print(f"accounting: {len(entries)} configurations and workloads counted", flush=True)
    # Inductor's cold compile of even the smallest network takes minutes on two cores, and AOTAutograd's
    # tracing alone half of the smoke test's time: the smoke test compiles with the "eager" backend
    # (Dynamo's graph capture, the graphs run by eager PyTorch), labelled as such.
    cpu = timings_section(cpu_config, "cpu", repeats, warmup, {"backend": "eager"} if args.quick else {})
    print("CPU timings done", flush=True)
    if torch.cuda.is_available():
        gpu = {"sections": [timings_section(config, "cuda", repeats, warmup, {"mode": "max-autotune"})
                            for config in gpu_configs]}
    else:
        gpu = {"skipped": "Not measured: no CUDA device here (CUDA events and torch.cuda.max_memory_allocated need one)."}
    results = {
        "command": "python -m bench" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "environment": _environment(),
        "accounting": entries,
        "targets": targets(entries),
        "resources": resources_section(args.resources),
        "cpu_timings": cpu,
        "gpu_timings": gpu,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(results, indent=1))
    (args.out / "bench.md").write_text(markdown(results))
    chart(results, args.out / "ratios.png")
    if not args.quick:
        shutil.copy(args.out / "bench.md", PUBLISHED / "RESULTS.md")
        shutil.copy(args.out / "ratios.png", PUBLISHED / "ratios.png")
    print(headline_tables(results), end="\n\n")
    print(f"wrote {args.out}/bench.json, bench.md, ratios.png" + ("" if args.quick else f"; {PUBLISHED}/RESULTS.md, ratios.png"))
    focus = focus_entry(entries)
    headline = wave_headline(focus) or [f"no AOT report at {args.resources}: build it with make aot"]
    print(f"wave model, {focus['nstack']}-stack {focus['dtype']} {focus['workload']}:", *headline, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
