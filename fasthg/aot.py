"""Ahead-of-time build of every shipped kernel configuration for real GPUs, with a resource report.

    python -m fasthg.aot --out build/kernels [--arch 80 90] [--filter TEXT] [--jobs N] [--keep-going]
    python -m fasthg.aot --check build/kernels/resources.json --arch 80

The build compiles each configuration of ``fasthg.kernels.registry.REGISTRY`` for each of its GPU
architectures with ``triton.compile`` (no GPU needed), writes the cubin and PTX, and reads the
cubin's resource usage with the ``cuobjdump`` bundled with Triton: registers per thread, the
stack frame and local memory per thread (nonzero only when ptxas spills registers or keeps an
array in local memory: either is counted as a spill here), and static shared memory, to which the
dynamic shared memory Triton allocates is added. (Triton's bundled ``ptxas -v`` cannot assemble
the PTX version Triton 3.9 emits for sm_90a, so cuobjdump is the one source for both.)

Occupancy is estimated from the per-SM limits of the A100 (sm_80) and H100 (sm_90): 65,536
registers allocated per warp in units of 256, 64 resident warps, 32 resident blocks, and 164 KB
(sm_80) or 228 KB (sm_90) of shared memory, 1 KB of it reserved per block by the runtime.

A configuration fails when it does not compile, spills, or needs more shared memory per block
than the architecture allows (163 KB on sm_80, 227 KB on sm_90). The build writes
``resources.json`` and ``resources.md`` and exits non-zero on any failure (``--keep-going``
writes the report and exits 0, for ``--check`` to judge per architecture, as ctest does).
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .dispatch import interpreting, rerun


@dataclass(frozen=True)
class Limits:
    registers_per_sm: int = 65536
    register_unit_per_warp: int = 256
    warps_per_sm: int = 64
    blocks_per_sm: int = 32
    shared_per_sm: int = 0
    shared_per_block: int = 0
    reserved_shared_per_block: int = 1024


LIMITS = {
    80: Limits(shared_per_sm=164 * 1024, shared_per_block=163 * 1024),
    90: Limits(shared_per_sm=228 * 1024, shared_per_block=227 * 1024),
}
_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


@dataclass
class Resources:
    label: str
    kernel: str
    dtype: str
    arch: int
    num_warps: int
    registers: int = 0
    spill_bytes: int = 0
    shared_bytes: int = 0
    occupancy: float = 0.0
    error: str = ""

    def failures(self):
        """Why this configuration is not shippable (empty when it is)."""
        if self.error:
            return [f"compile error: {self.error}"]
        reasons = []
        if self.spill_bytes:
            reasons.append(f"{self.spill_bytes} bytes of stack/local memory per thread (spill)")
        if self.shared_bytes > LIMITS[self.arch].shared_per_block:
            reasons.append(f"{self.shared_bytes} bytes of shared memory > {LIMITS[self.arch].shared_per_block}")
        return reasons


def parse_resource_usage(text):
    """(registers, stack + local bytes, static shared bytes) from ``cuobjdump --dump-resource-usage``."""
    match = _USAGE.search(text)
    if match is None:
        raise ValueError(f"no resource usage line in cuobjdump output: {text[:200]!r}")
    registers, stack, shared, local = map(int, match.groups())
    return registers, stack + local, shared


def occupancy(registers, shared_bytes, num_warps, limits):
    """Fraction of an SM's warp slots that resident blocks of this kernel can fill."""
    registers_per_warp = -(-max(registers, 1) * 32 // limits.register_unit_per_warp) * limits.register_unit_per_warp
    by_registers = limits.registers_per_sm // (registers_per_warp * num_warps)
    by_shared = limits.shared_per_sm // (shared_bytes + limits.reserved_shared_per_block)
    by_warps = limits.warps_per_sm // num_warps
    blocks = min(by_registers, by_shared, by_warps, limits.blocks_per_sm)
    return blocks * num_warps / limits.warps_per_sm


def _cuobjdump():
    import triton
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")


def compile_config(index, arch, out_dir):
    """Compiles REGISTRY[index] for sm_``arch``, writes its cubin and PTX, returns its Resources."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from fasthg.kernels.registry import REGISTRY, TRITON_TYPE

    config = REGISTRY[index]
    result = Resources(config.label, config.name, TRITON_TYPE[config.dtype], arch, config.num_warps)
    try:
        compiled = triton.compile(
            ASTSource(fn=config.kernel, signature=config.triton_signature(), constexprs=config.constexprs),
            target=GPUTarget("cuda", arch, 32), options={"num_warps": config.num_warps, "num_stages": config.num_stages})
    except Exception as error:  # a compile error is a finding of the report, not a crash of the build
        result.error = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"[:300]
        return result
    stem = Path(out_dir) / f"sm_{arch}" / f"{index:03d}_{config.name}_{result.dtype}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".cubin").write_bytes(compiled.asm["cubin"])
    stem.with_suffix(".ptx").write_text(compiled.asm["ptx"])
    usage = subprocess.run([_cuobjdump(), "--dump-resource-usage", str(stem.with_suffix(".cubin"))],
                           capture_output=True, text=True, check=True).stdout
    result.registers, result.spill_bytes, static_shared = parse_resource_usage(usage)
    result.shared_bytes = static_shared + compiled.metadata.shared
    result.occupancy = occupancy(result.registers, result.shared_bytes, config.num_warps, LIMITS[arch])
    return result


def build(out_dir, archs, text_filter, jobs):
    """Compiles every matching (configuration, architecture) pair; returns their Resources in registry order."""
    from fasthg.kernels.registry import REGISTRY

    work = [(index, arch) for index, config in enumerate(REGISTRY) if text_filter in config.label
            for arch in config.archs if arch in archs]
    if jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(compile_config, *zip(*work), [out_dir] * len(work)))
    return [compile_config(index, arch, out_dir) for index, arch in work]


def markdown(results):
    """The report as a Markdown table, one row per (configuration, architecture)."""
    lines = ["| configuration | arch | registers | spill bytes | shared bytes | occupancy | status |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        status = "; ".join(r.failures()) or "ok"
        lines.append(f"| `{r.label}` | sm_{r.arch} | {r.registers} | {r.spill_bytes} | {r.shared_bytes} | "
                     f"{r.occupancy:.0%} | {status} |")
    return "\n".join(lines) + "\n"


def write_report(results, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "resources.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    (out_dir / "resources.md").write_text(markdown(results))


def check(report_path, archs):
    """The failures recorded in a report for the given architectures, as printable lines."""
    entries = [Resources(**entry) for entry in json.loads(Path(report_path).read_text())]
    checked = [r for r in entries if r.arch in archs]
    if not checked:
        return [f"{report_path}: no configuration for sm_{'/'.join(map(str, archs))}"]
    return [f"{r.label} sm_{r.arch}: {reason}" for r in checked for reason in r.failures()]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fasthg.aot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for cubins, PTX and resources.json/.md")
    parser.add_argument("--check", metavar="REPORT", help="judge an existing resources.json instead of building")
    parser.add_argument("--arch", type=int, nargs="+", choices=sorted(LIMITS), default=sorted(LIMITS))
    parser.add_argument("--filter", default="", help="only configurations whose label contains this text")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep-going", action="store_true", help="write the report and exit 0 despite failures")
    args = parser.parse_args(argv)
    if args.check:
        failures = check(args.check, args.arch)
    elif args.out:
        if interpreting():  # Triton must compile here, not interpret
            rerun("fasthg.aot", interpret=False)
        results = build(args.out, args.arch, args.filter, args.jobs)
        write_report(results, args.out)
        print(f"{len(results)} configurations compiled into {args.out} (report: resources.md)")
        failures = [] if args.keep_going else [f"{r.label} sm_{r.arch}: {why}" for r in results for why in r.failures()]
    else:
        parser.error("give --out to build or --check REPORT to judge one")
    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
