"""The whole benchmark in its reduced form (``python -m bench --quick``), and its parts that need no full run."""
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.resources import DEFAULT_REPORT, read_resources, summarise
from bench.roofline import GPUS
from bench.suite import efficiency_key, resources_section, timings_section
from bench.workloads import Config

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_json_markdown_and_chart(tmp_path):
    published = ROOT / "bench" / "RESULTS.md"
    before = published.stat().st_mtime if published.exists() else None
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # as `make bench` runs it
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT, env=env,
                         timeout=600, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| nstack | dtype | workload | launches eager | fasthg | ratio |" in run.stdout  # the headline table
    assert "| 2 | bf16 | training step |" in run.stdout
    results = json.loads((tmp_path / "bench.json").read_text())
    assert len(results["accounting"]) == 8  # 1 and 2 stacks x fp32, bf16 x training step, inference
    for entry in results["accounting"]:
        if entry["workload"] == "inference":
            assert entry["ratios"]["flops"] == pytest.approx(1.0)  # the same convolutions on both sides
        else:  # and in training each Residual's conv1 dgrad twice (fasthg/ops/residual.py): a few percent
            assert 1.0 < entry["ratios"]["flops"] < 1.06
        if entry["workload"] == "training step":
            assert entry["ratios"]["saved_bytes"] < 1.0
    assert set(results["cpu_timings"]["results"]["training step"]) == {"eager", "torch.compile", "fasthg"}
    assert "no CUDA device" in results["gpu_timings"]["skipped"] or "sections" in results["gpu_timings"]
    text = (tmp_path / "bench.md").read_text()
    assert "Roofline model: a lower bound, not a measurement" in text and "| 2 | bf16 | training step |" in text
    assert "### Wave model: launches that cannot fill the GPU" in text
    if read_resources(ROOT / DEFAULT_REPORT) is None:
        assert "Not modelled: no AOT resource report" in text
    else:  # eager's aten kernels are taken as filling the GPU; fasthg's launches at most fill it
        for entry, gpu in itertools.product(results["accounting"], GPUS):
            assert entry["sides"]["eager"][efficiency_key(gpu)] == pytest.approx(1.0)
            assert 0 < entry["sides"]["fasthg"][efficiency_key(gpu)] <= 1
    assert (tmp_path / "ratios.png").read_bytes().startswith(b"\x89PNG")
    assert (published.stat().st_mtime if published.exists() else None) == before, "--quick must not touch bench/RESULTS.md"


def test_resources_summary_and_missing_report(tmp_path):
    entry = dict(label="k[bf16]", kernel="k", dtype="bf16", num_warps=4, registers=40, spill_bytes=0, shared_bytes=2048,
                 occupancy=0.5, error="")
    (tmp_path / "resources.json").write_text(json.dumps([{**entry, "arch": 80}, {**entry, "arch": 90, "occupancy": 0.75}]))
    [row] = summarise(read_resources(tmp_path / "resources.json"))
    assert row["configurations"] == 1 and row["sm_80"]["occupancy"] == [0.5, 0.5] and row["sm_90"]["shared_bytes"] == 2048
    missing = resources_section(tmp_path / "absent.json")
    assert "make aot" in missing["missing"]


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA device: CUDA-event timing, torch.cuda.max_memory_allocated and the compiled "
                           "Triton kernels (the shared loop runs on CPU in test_quick_run_writes_json_markdown_and_chart)")
def test_gpu_timings():
    section = timings_section(Config(1, 2, 64, torch.bfloat16, inp_dim=16, oup_dim=4), "cuda", 1, 1, {"mode": "max-autotune"})
    for variants in section["results"].values():
        assert all(v["peak_bytes"] > 0 and v["min"] > 0 for v in variants.values())
