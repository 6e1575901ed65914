"""Ahead-of-time build of every shipped kernel configuration for real GPUs, with a resource report.

    python -m fasthg.aot --out build/kernels [--arch 80 90] [--filter TEXT] [--jobs N] [--keep-going]
    python -m fasthg.aot --check build/kernels/resources.json --arch 80

The build compiles each configuration of ``fasthg.kernels.registry.REGISTRY`` for each of its GPU
architectures with ``triton.compile`` (no GPU needed), in every specialisation that runs (below),
writes the cubin and PTX, and reads the cubin's resource usage with the ``cuobjdump`` bundled with
Triton: registers per thread, the stack frame and local memory per thread (nonzero only when
ptxas spills registers or keeps an array in local memory: either is counted as a spill here), and
static shared memory, to which the dynamic shared memory Triton allocates is added. (Triton's
bundled ``ptxas -v`` cannot assemble the PTX version Triton 3.9 emits for sm_90a, so cuobjdump is
the one source for both.)

Occupancy is estimated from the per-SM limits of the A100 (sm_80) and H100 (sm_90): 65,536
registers allocated per warp in units of 256, 64 resident warps, 32 resident blocks, and 164 KB
(sm_80) or 228 KB (sm_90) of shared memory, 1 KB of it reserved per block by the runtime.

Specialisations. Triton's JIT compiles a kernel once per specialisation of its runtime arguments
(``triton/runtime/jit.py`` through ``native_specialize_impl`` and ``BaseBackend``): a pointer
whose address, or an integer whose value, is divisible by 16 gets ``tt.divisibility = 16`` (wider
vector loads, other registers and shared memory), and an integer equal to 1 becomes the constexpr
1. The report compiles, per configuration, the unspecialised fallback and each specialisation
that the full-size model's launches have: a 2-stack PoseNet (every launch of the 8-stack one,
fewer times), batch 16, 256x256, inp_dim 256, training step and inference, and the heatmap
ops as training and evaluation call them (16 joints, 64x64 maps, visibility given), recorded on
the meta device with ``bench.accounting`` (so the build runs from the source tree). Pointers
count as aligned when their offset in their storage is (CUDA's allocator aligns storages to 512
bytes). The launches are recorded in bf16 and stand for every dtype: only the tile and the dot
precision constexprs differ by dtype, and neither changes the arguments (alignments only improve
with wider elements). A configuration that no recorded launch uses is compiled with aligned
pointers and unspecialised integers.

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
    specialisation: str
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

    def failure_lines(self):
        """``failures()`` as printable lines naming the configuration, specialisation and architecture."""
        return [f"{self.label} ({self.specialisation}) sm_{self.arch}: {reason}" for reason in self.failures()]


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


@dataclass(frozen=True, order=True)
class Specialisation:
    """How the JIT specialises a launch's runtime arguments: ``divisible`` (names) get
    ``tt.divisibility = 16``, ``ones`` (integers equal to 1) become the constexpr 1."""
    divisible: tuple = ()
    ones: tuple = ()

    def describe(self, config):
        """A report label: which pointers are aligned, which integers divisible by 16 or 1."""
        if not self.divisible and not self.ones:
            return "unspecialised"
        pointers = [name for name, kind in config.signature.items() if kind.startswith("*")]
        unaligned = [name for name in pointers if name not in self.divisible]
        parts = ["pointers aligned" if not unaligned else
                 "no pointer aligned" if len(unaligned) == len(pointers) else f"unaligned {','.join(unaligned)}"]
        integers = [name for name in self.divisible if name not in pointers]
        parts.append(f"{','.join(integers)} % 16 = 0" if integers else "no integer % 16 = 0")
        if self.ones:
            parts.append(f"{','.join(self.ones)} = 1")
        return "; ".join(parts)

    def source(self, config):
        """The ASTSource of ``config`` compiled with this specialisation (the parameters its variant
        does not take are the constexpr None, as the JIT makes of the None a launcher passes)."""
        from triton.compiler import ASTSource

        signature = {name: kind for name, kind in config.triton_signature().items() if name not in self.ones}
        attrs = {(config.kernel.arg_names.index(name),): [["tt.divisibility", 16]] for name in self.divisible}
        constexprs = {**dict.fromkeys(config.absent), **config.constexprs, **dict.fromkeys(self.ones, 1)}
        return ASTSource(fn=config.kernel, signature=signature, constexprs=constexprs, attrs=attrs)


def specialisation_of(config, arguments):
    """The Specialisation the JIT gives a launch of ``config`` with ``arguments`` (by name):
    integers as Triton's own ``native_specialize_impl`` does, pointers by their offset in their
    storage (the storage itself is 512-byte aligned by CUDA's allocator)."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend

    divisible, ones = [], []
    for name, kind in config.signature.items():
        value = arguments[name]
        if kind.startswith("*"):
            if value.storage_offset() * value.element_size() % 16 == 0:
                divisible.append(name)
        elif kind.startswith("i"):
            specialised = native_specialize_impl(BaseBackend, value, False, True, True)
            if specialised == ("constexpr", 1):
                ones.append(name)
            elif specialised[1] == "D":
                divisible.append(name)
    return Specialisation(tuple(divisible), tuple(ones))


def _variant(constexprs):
    """The constexprs that choose a kernel's variant: all but the tile (BLOCK_*) and the dot's
    precision (INPUT_PRECISION, UPCAST), which differ by dtype and leave the arguments as they are."""
    return frozenset((k, v) for k, v in constexprs.items()
                     if not k.startswith("BLOCK_") and k not in ("INPUT_PRECISION", "UPCAST"))


def recorded_launches():
    """The Triton launches (bench.launches.TritonLaunch) of the full-size model's training step and
    inference and of the heatmap ops at full size, in bf16 on the meta device (see the module docstring)."""
    import torch

    from bench.accounting import GPU_ARCH, triton_launches
    from bench.counting import LaunchRecorder
    from bench.workloads import WORKLOADS, Config
    from fasthg import ops
    from fasthg.kernels.heatmap import STYLES
    from fasthg.kernels.registry import emulating

    dtype = torch.bfloat16
    launches = [launch for workload in WORKLOADS for launch in triton_launches(Config(2, 16, 256, dtype), workload)]
    preds = torch.empty((16, 8, 16, 64, 64), dtype=dtype, device="meta", requires_grad=True)
    keypoints = torch.empty((16, 16, 2), device="meta")
    visible = torch.empty((16, 16), dtype=torch.bool, device="meta")
    recorder = LaunchRecorder()
    with emulating(GPU_ARCH), recorder:
        for style in STYLES:
            for weighted in (False, True):
                ops.heatmap_loss(preds, keypoints, visible, 1.0, style, weighted)  # training
                ops.heatmap_loss(preds.detach(), keypoints, visible, 1.0, style, weighted)  # validation
            ops.render_heatmaps(keypoints, visible, (64, 64), 1.0, style)
            if style != "unbiased":  # decoding has three conventions
                ops.decode_heatmaps(preds[:, -1].detach(), style)
    return launches + recorder.launches


def specialisations(configs, launches):
    """Per configuration (a list parallel to ``configs``), the sorted Specialisations to compile:
    the unspecialised fallback and those of ``launches`` of its kernel variant (any dtype), or
    with no such launch, aligned pointers and unspecialised integers."""
    seen = {}
    by_kernel, by_variant = {}, {}
    for config in configs:
        by_kernel.setdefault(config.kernel.fn.__name__, config)
        by_variant.setdefault((config.kernel.fn.__name__, _variant(config.constexprs)), config)
    for launch in launches:
        variant = (launch.kernel, _variant({k: launch.arguments[k] for k in by_kernel[launch.kernel].constexprs}))
        seen.setdefault(variant, set()).add(specialisation_of(by_variant[variant], launch.arguments))
    result = []
    for config in configs:
        pointers = tuple(name for name, kind in config.signature.items() if kind.startswith("*"))
        observed = seen.get((config.kernel.fn.__name__, _variant(config.constexprs)), {Specialisation(pointers)})
        result.append(sorted({Specialisation(), *observed}))
    return result


def compile_config(index, specialisation, number, arch, out_dir):
    """Compiles REGISTRY[index] in ``specialisation`` (its ``number``-th) for sm_``arch``, writes
    its cubin and PTX, returns its Resources."""
    import triton
    from triton.backends.compiler import GPUTarget

    from fasthg.kernels.registry import REGISTRY, TRITON_TYPE

    config = REGISTRY[index]
    result = Resources(config.label, specialisation.describe(config), config.name, TRITON_TYPE[config.dtype], arch,
                       config.num_warps)
    try:
        compiled = triton.compile(specialisation.source(config), target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": config.num_warps, "num_stages": config.num_stages})
    except Exception as error:  # a compile error is a finding of the report, not a crash of the build
        result.error = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"[:300]
        return result
    stem = Path(out_dir) / f"sm_{arch}" / f"{index:03d}_{config.name}_{result.dtype}_{number}"
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
    """Compiles every matching (configuration, specialisation, architecture); returns their
    Resources in registry order."""
    from fasthg.kernels.registry import REGISTRY

    variants = specialisations(REGISTRY, recorded_launches())
    work = [(index, specialisation, number, arch) for index, config in enumerate(REGISTRY) if text_filter in config.label
            for number, specialisation in enumerate(variants[index]) for arch in config.archs if arch in archs]
    if jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(compile_config, *zip(*work), [out_dir] * len(work)))
    return [compile_config(*item, out_dir) for item in work]


def markdown(results):
    """The report as a Markdown table, one row per (configuration, specialisation, architecture)."""
    lines = ["| configuration | specialisation | arch | registers | spill bytes | shared bytes | occupancy | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        status = "; ".join(r.failures()) or "ok"
        lines.append(f"| `{r.label}` | {r.specialisation} | sm_{r.arch} | {r.registers} | {r.spill_bytes} | "
                     f"{r.shared_bytes} | {r.occupancy:.0%} | {status} |")
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
    return [line for r in checked for line in r.failure_lines()]


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
        print(f"{len(results)} (configuration, specialisation, architecture) compiled into {args.out} "
              "(report: resources.md)")
        failures = [] if args.keep_going else [line for r in results for line in r.failure_lines()]
    else:
        parser.error("give --out to build or --check REPORT to judge one")
    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
