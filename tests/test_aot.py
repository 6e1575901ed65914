"""The ahead-of-time build's pieces: parsing, occupancy, the checker, and one real compile."""
import json
import os
import subprocess
import sys

import pytest
import torch

from bench.launches import TritonLaunch
from fasthg import aot
from fasthg.kernels.registry import REGISTRY

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
    entry = dict(label="k[fp32]", specialisation="unspecialised", kernel="k", dtype="fp32", arch=80, num_warps=4,
                 registers=64, spill_bytes=0, shared_bytes=1024, occupancy=1.0, error="")
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
    assert aot.check(report, [90]) == ["k[fp32] (unspecialised) sm_90: 4 bytes of stack/local memory per thread (spill)"]
    assert aot.main(["--check", str(report), "--arch", "80"]) == 1


def test_check_passes_a_clean_report_and_flags_a_missing_arch(tmp_path):
    report = tmp_path / "resources.json"
    report.write_text(json.dumps([_entry()]))
    assert aot.check(report, [80]) == []
    assert "no configuration for sm_90" in aot.check(report, [90])[0]


UPSAMPLE = next(config for config in REGISTRY
                if config.name == "upsample_add_forward" and config.dtype == torch.float32 and 80 in config.archs)


def _launch_arguments(offset=0, **sizes):
    """Arguments of an upsample_add_forward launch: fp32 pointers ``offset`` elements into their storage."""
    pointer = torch.empty(64, device="meta")[offset:]
    return {"low_ptr": pointer, "skip_ptr": pointer, "out_ptr": pointer, **dict(N=16, C=256, H=64, W=64), **sizes}


def test_specialisation_is_what_the_jit_makes_of_the_arguments():
    # 16-byte aligned pointers and integers divisible by 16 are marked; 1 becomes a constexpr; 8 and 17 stay plain.
    assert aot.specialisation_of(UPSAMPLE, _launch_arguments()) == aot.Specialisation(
        ("low_ptr", "skip_ptr", "out_ptr", "N", "C", "H", "W"))
    assert aot.specialisation_of(UPSAMPLE, _launch_arguments(offset=2, N=1, H=8, W=17)) == \
        aot.Specialisation(("C",), ("N",))
    assert aot.specialisation_of(UPSAMPLE, _launch_arguments(offset=4, C=0)) == aot.Specialisation(
        ("low_ptr", "skip_ptr", "out_ptr", "N", "C", "H", "W"))


def test_specialisation_labels_say_what_is_specialised():
    assert aot.Specialisation().describe(UPSAMPLE) == "unspecialised"
    assert aot.Specialisation(("low_ptr", "skip_ptr", "out_ptr", "N", "C")).describe(UPSAMPLE) == \
        "pointers aligned; N,C % 16 = 0"
    assert aot.Specialisation(("skip_ptr",), ("N",)).describe(UPSAMPLE) == \
        "unaligned low_ptr,out_ptr; no integer % 16 = 0; N = 1"


def test_specialisation_source_marks_divisibility_and_ones_as_the_jit_does():
    source = aot.Specialisation(("low_ptr", "H"), ("N",)).source(UPSAMPLE)
    names = UPSAMPLE.kernel.arg_names
    assert source.attrs == {(names.index(name),): [["tt.divisibility", 16]] for name in ("low_ptr", "H")}
    assert "N" not in source.signature and source.constants[(names.index("N"),)] == 1
    assert source.signature["H"] == "i32" and source.signature["low_ptr"] == "*fp32"


def test_each_configuration_compiles_its_launches_specialisations_and_the_fallback():
    def flags(config):  # what makes a variant: every constexpr but the BLOCK_ sizes
        return {name: value for name, value in config.constexprs.items() if not name.startswith("BLOCK_")}
    launches = [TritonLaunch("upsample_add_forward_kernel", (1,),
                             {**_launch_arguments(H=height, W=height), **UPSAMPLE.constexprs}) for height in (64, 8, 64)]
    variants = aot.specialisations(REGISTRY, launches)
    pointers = ("low_ptr", "skip_ptr", "out_ptr")
    aligned, small = aot.Specialisation((*pointers, "N", "C", "H", "W")), aot.Specialisation((*pointers, "N", "C"))
    for config, specialisations in zip(REGISTRY, variants):
        if config.name == "upsample_add_forward" and flags(config) == flags(UPSAMPLE):
            # every dtype and tile of UPSAMPLE's variant (STATS off, the GPU's REDUCE_GROUP): the launches stand for all
            assert specialisations == sorted([aot.Specialisation(), aligned, small])
        else:  # launched nowhere in this list: aligned pointers, integers unspecialised
            own = tuple(name for name, kind in config.signature.items() if kind.startswith("*"))
            assert specialisations == sorted([aot.Specialisation(), aot.Specialisation(own)]), config.label


def test_real_compile_of_max_pool_for_both_architectures(tmp_path):
    # The interpreter is on in this process; the build re-runs itself without it.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "fasthg.aot", "--out", str(tmp_path), "--filter",
                             "max_pool2x2_forward[fp32;STATS=False,WRITE_INDEX=False,BLOCK_P=16,", "--jobs", "1"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    entries = json.loads((tmp_path / "resources.json").read_text())
    # The full-size model's inference pools inputs of 128..16 (H, W divisible by 16) and of 8 (not).
    expected = ["pointers aligned; N,C % 16 = 0", "pointers aligned; N,C,H,W % 16 = 0", "unspecialised"]
    for arch in (80, 90):
        assert sorted(e["specialisation"] for e in entries if e["arch"] == arch) == expected
    for entry in entries:
        assert entry["registers"] > 0 and entry["spill_bytes"] == 0 and not entry["error"]
    ptx = {path.name: path.read_text() for path in (tmp_path / "sm_90").glob("*.ptx")}
    assert len(ptx) == 3 and len(list((tmp_path / "sm_80").glob("*.cubin"))) == 3
    # Alignment is what lets the compiled code load vectors: the fallback loads scalars.
    vector_loads = {name: "ld.global.v" in text for name, text in ptx.items()}
    assert sum(vector_loads.values()) == 2 and not vector_loads[min(ptx)], vector_loads
    assert "| ok |" in (tmp_path / "resources.md").read_text()
