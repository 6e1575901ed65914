"""``python -m fasthg.gpucheck`` in its CPU form (kernels in the interpreter at small sizes): the
report names every check, GPU-only ones as not run, and a wrong result fails the run."""
import json

import pytest
import torch

from fasthg import gpucheck, ops

QUICK = ["upsample_add", "decode_heatmaps", "stream", "cuda:1", "graph"]


def _run(tmp_path, jobs):
    status = gpucheck.main(["--out", str(tmp_path), "--only", *QUICK, "--jobs", str(jobs)])
    return status, json.loads((tmp_path / "gpucheck.json").read_text())


def test_every_op_and_the_gpu_checks_are_listed():
    names = list(gpucheck.all_checks(gpucheck.INTERPRETER, torch.device("cpu")))
    for op in ("upsample_add", "max_pool2x2", "render_heatmaps", "heatmap_loss", "decode_heatmaps", "Residual",
               "PoseNet training step"):
        assert any(name.startswith(f"parity {op}") for name in names), f"no parity check of {op}"
    assert {"determinism", "second stream", "cuda:1", "CUDA graph replay"} <= set(names)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU form runs on a machine without CUDA")
def test_the_cpu_form_passes_and_says_the_gpu_part_did_not_run(tmp_path):
    status, report = _run(tmp_path, jobs=2)  # the CPU form's default where there are two cores
    expected = [name for name in gpucheck.all_checks(gpucheck.INTERPRETER, torch.device("cpu"))
                if any(text in name for text in QUICK)]
    assert list(report["checks"]) == expected
    for name in ("second stream", "cuda:1", "CUDA graph replay"):
        assert "no CUDA device" in report["checks"][name]["skipped"]
    ran = {name: check for name, check in report["checks"].items() if "skipped" not in check}
    assert len(ran) == 6 and all(check["passed"] for check in ran.values()), report["verdict"]
    assert status == 0 and report["passed"]
    assert "The GPU part did NOT run" in report["verdict"] and (tmp_path / "gpucheck.md").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU form runs on a machine without CUDA")
def test_a_wrong_result_fails_the_check_and_the_exit_status(tmp_path, monkeypatch):
    right = ops.upsample_add
    monkeypatch.setattr(ops, "upsample_add", lambda low, skip: right(low, skip) * 1.1)  # beyond 4 ulps of bf16
    status, report = _run(tmp_path, jobs=1)  # in this process, where the patch is
    failed = [name for name, check in report["checks"].items() if check.get("passed") is False]
    assert failed == ["parity upsample_add float32", "parity upsample_add bfloat16", "parity upsample_add float16"]
    assert "output 0: error vs fp64" in report["checks"][failed[0]]["failures"][0]
    assert status == 1 and not report["passed"] and "FAILED 3 of 6 checks" in report["verdict"]


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_:
        gpucheck.main(["--jobs", "0"])
    assert exit_.value.code == 2 and "--jobs must be a positive number" in capsys.readouterr().err
