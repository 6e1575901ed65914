import subprocess
import sys

import pytest
import torch

import fasthg
from fasthg import dispatch


def test_set_backend_returns_previous_and_context_manager_restores():
    assert fasthg.get_backend() == "auto"
    assert fasthg.set_backend("torch") == "auto"
    try:
        with fasthg.backend("triton"):
            assert fasthg.get_backend() == "triton"
        assert fasthg.get_backend() == "torch"
    finally:
        fasthg.set_backend("auto")


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="backend: expected one of 'auto', 'triton', 'torch', got 'cuda'"):
        fasthg.set_backend("cuda")
    with pytest.raises(ValueError, match="got 'gpu'"):
        fasthg.backend("gpu")


def test_auto_uses_torch_on_cpu_and_triton_on_cuda():
    assert not dispatch.use_triton(torch.zeros(1))
    with fasthg.backend("triton"):
        assert dispatch.use_triton(torch.zeros(1))
    with fasthg.backend("torch"):
        assert not dispatch.use_triton(torch.zeros(1))


def _run(code, **env):
    import os
    full_env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env)


def test_environment_variable_sets_initial_backend():
    result = _run("import fasthg; print(fasthg.get_backend())", FASTHG_BACKEND="torch")
    assert result.stdout.strip() == "torch", result.stderr
    bad = _run("import fasthg", FASTHG_BACKEND="nope")
    assert "backend: expected one of" in bad.stderr


def test_forcing_triton_on_cpu_without_interpreter_explains_itself():
    code = ("import torch, fasthg; fasthg.set_backend('triton'); "
            "fasthg.ops.upsample_add(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4))")
    result = _run(code)
    assert result.returncode != 0 and "set TRITON_INTERPRET=1" in result.stderr


def test_float64_on_a_gpu_runs_the_torch_path(monkeypatch):
    # fp64 has no compiled GPU tiles (kernels/registry.py): "auto" sends it to PyTorch's kernels,
    # "triton" says so instead of failing in a registry lookup.
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with fasthg.backend("auto"):
        assert not dispatch.use_triton(torch.empty(1, dtype=torch.float64))
        assert dispatch.use_triton(torch.empty(1, dtype=torch.float32))
    with fasthg.backend("triton"), pytest.raises(RuntimeError, match="float64 on a GPU"):
        dispatch.use_triton(torch.empty(1, dtype=torch.float64))
