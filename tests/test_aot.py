"""The ahead-of-time build's pieces: parsing, occupancy, the checker, and one real compile."""
import json
import os
import subprocess
import sys

import pytest

from fasthg import aot

CUOBJDUMP_SAMPLE = """
Resource usage:
 Common:
  GLOBAL:0
 Function conv_forward_kernel:
  REG:168 STACK:16 SHARED:1024 LOCAL:8 CONSTANT[0]:584 TEXTURE:0 SURFACE:0 SAMPLER:0
"""


def test_parse_resource_usage_counts_stack_and_local_as_spill():
    assert aot.parse_resource_usage(CUOBJDUMP_SAMPLE) == (168, 24, 1024)
    with pytest.raises(ValueError, match="no resource usage line"):
        aot.parse_resource_usage("cuobjdump: nothing here")


@pytest.mark.parametrize("registers, shared, warps, arch, expected", [
    # 32 regs x 32 threads = 1024 per warp; 64K / (1024 x 4) = 16 blocks; 64 warps / 4 = 16 blocks -> 64 warps.
    (32, 0, 4, 80, 1.0),
    # 168 regs -> 5376 per warp (a multiple of 256); 64K / (5376 x 4) = 3 blocks = 12 warps of 64.
    (168, 0, 4, 80, 12 / 64),
    # Shared memory bound: 164 KB / (40 KB + 1 KB reserved) = 4 blocks of 8 warps = 32 warps.
    (32, 40 * 1024, 8, 80, 32 / 64),
    # sm_90's 228 KB fit 5 such blocks: 40 warps.
    (32, 40 * 1024, 8, 90, 40 / 64),
])
def test_occupancy_by_hand(registers, shared, warps, arch, expected):
    assert aot.occupancy(registers, shared, warps, aot.LIMITS[arch]) == pytest.approx(expected)


def _entry(**overrides):
    entry = dict(label="k[fp32]", kernel="k", dtype="fp32", arch=80, num_warps=4, registers=64,
                 spill_bytes=0, shared_bytes=1024, occupancy=1.0, error="")
    entry.update(overrides)
    return entry


@pytest.mark.parametrize("bad, reason", [
    (_entry(spill_bytes=8), "8 bytes of stack/local memory"),
    (_entry(shared_bytes=200 * 1024), "shared memory > 166912"),
    (_entry(error="CompilationError: boom"), "compile error: CompilationError: boom"),
])
def test_check_fails_on_spill_shared_memory_and_compile_error(tmp_path, bad, reason):
    report = tmp_path / "resources.json"
    report.write_text(json.dumps([_entry(), bad, _entry(arch=90, spill_bytes=4)]))
    failures = aot.check(report, [80])
    assert len(failures) == 1 and reason in failures[0]
    assert aot.check(report, [90]) == ["k[fp32] sm_90: 4 bytes of stack/local memory per thread (spill)"]
    assert aot.main(["--check", str(report), "--arch", "80"]) == 1


def test_check_passes_a_clean_report_and_flags_a_missing_arch(tmp_path):
    report = tmp_path / "resources.json"
    report.write_text(json.dumps([_entry()]))
    assert aot.check(report, [80]) == []
    assert "no configuration for sm_90" in aot.check(report, [90])[0]


def test_real_compile_of_upsample_add_for_both_architectures(tmp_path):
    # The interpreter is on in this process; the build re-runs itself without it.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "fasthg.aot", "--out", str(tmp_path), "--filter",
                             "upsample_add_forward[fp32", "--jobs", "1"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    entries = json.loads((tmp_path / "resources.json").read_text())
    assert sorted(e["arch"] for e in entries) == [80, 90]
    for entry in entries:
        assert entry["registers"] > 0 and entry["spill_bytes"] == 0 and not entry["error"]
        assert list((tmp_path / f"sm_{entry['arch']}").glob("*.cubin"))
    assert "| ok |" in (tmp_path / "resources.md").read_text()
