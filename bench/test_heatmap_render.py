"""Rendering heatmap targets on the CPU: fasthg's torch path against a per-joint NumPy loop of the
princeton kind (what every peer's data loader does), side by side in one pytest-benchmark run.

    .venv/bin/python -m pytest bench/test_heatmap_render.py

A batch of 16 images x 16 joints at 64x64, sigma 1, princeton style, torch on one thread (as in
a data-loader worker; on this shared 2-core machine two OpenMP threads often wait on each other).
The two variants share a benchmark group, so pytest-benchmark's table shows them next to each
other; the speed-ups (ratios of the minimum and of the median times, NumPy loop / torch path) are
printed at the end and written with the timings to ``results/heatmap_render.json``. Not part of
the test suite (``pytest.ini`` collects ``tests/``): timings on a shared machine are reported,
never asserted.

Both sides produce a dense 4 MB float32 batch, and on this machine filling it is a large share of
either side: ``torch.zeros(16, 16, 64, 64)`` alone takes about a third of the torch path's time.
Memory management also shows: pytest-benchmark keeps each result alive until the next call
returns, and the NumPy loop measures about 2.3x faster that way than when its result is freed
right after each call (then about 3.4 ms against 1.45 ms).
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fasthg

BATCH, JOINTS, RES, SIGMA = 16, 16, 64, 1.0
RESULTS = Path("results") / "heatmap_render.json"


def numpy_loop(keypoints, res=RES, sigma=SIGMA):
    """princeton's GenerateHeatmap, per image and per joint: a (6 sigma + 3)^2 Gaussian patch,
    precomputed once, pasted with np.maximum at the truncated centre; batched by np.stack."""
    size = 6 * sigma + 3
    axis = np.arange(0, size, 1, float)
    patch = np.exp(-((axis[None, :] - (3 * sigma + 1)) ** 2 + (axis[:, None] - (3 * sigma + 1)) ** 2) / (2 * sigma ** 2))
    images = []
    for person in keypoints:
        maps = np.zeros((len(person), res, res), dtype=np.float32)
        for joint, point in enumerate(person):
            if not point[0] > 0:
                continue
            x, y = int(point[0]), int(point[1])
            if x < 0 or y < 0 or x >= res or y >= res:
                continue
            ul = int(x - 3 * sigma - 1), int(y - 3 * sigma - 1)
            br = int(x + 3 * sigma + 2), int(y + 3 * sigma + 2)
            px, py = (max(0, -ul[0]), min(br[0], res) - ul[0]), (max(0, -ul[1]), min(br[1], res) - ul[1])
            mx, my = (max(0, ul[0]), min(br[0], res)), (max(0, ul[1]), min(br[1], res))
            maps[joint, my[0]:my[1], mx[0]:mx[1]] = np.maximum(maps[joint, my[0]:my[1], mx[0]:mx[1]],
                                                                patch[py[0]:py[1], px[0]:px[1]])
        images.append(maps)
    return np.stack(images)


def torch_path(keypoints):
    with fasthg.backend("torch"):
        return fasthg.ops.render_heatmaps(keypoints, None, (RES, RES), SIGMA, "princeton")


KEYPOINTS = torch.rand(BATCH, JOINTS, 2, generator=torch.Generator().manual_seed(0)) * RES
VARIANTS = {"numpy loop (princeton)": lambda: numpy_loop(KEYPOINTS.numpy()),
            "fasthg torch path": lambda: torch_path(KEYPOINTS)}
_seconds = {}  # variant: {"min": ..., "median": ...}


@pytest.fixture(scope="module", autouse=True)
def report(request):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if len(_seconds) < len(VARIANTS):
        return
    loop, fused = (_seconds[name] for name in VARIANTS)
    speedup = {stat: loop[stat] / fused[stat] for stat in ("min", "median")}
    result = {"batch": BATCH, "joints": JOINTS, "resolution": RES, "torch_threads": 1, "seconds": _seconds,
              "speedup": speedup}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nrender {BATCH}x{JOINTS} joints at {RES}x{RES}: NumPy loop {loop['min'] * 1e3:.3f} ms, "
              f"torch path {fused['min'] * 1e3:.3f} ms (min); speed-up {speedup['min']:.1f}x (min), "
              f"{speedup['median']:.1f}x (median) -> {RESULTS}")


def test_the_variants_agree():
    assert np.abs(torch_path(KEYPOINTS).numpy() - numpy_loop(KEYPOINTS.numpy())).max() < 3e-7


@pytest.mark.parametrize("variant", VARIANTS)
def test_render(benchmark, variant):
    benchmark.group = f"render {BATCH}x{JOINTS} joints at {RES}x{RES}"
    benchmark.pedantic(VARIANTS[variant], rounds=200, warmup_rounds=20, iterations=1)
    _seconds[variant] = {"min": benchmark.stats.stats.min, "median": benchmark.stats.stats.median}
