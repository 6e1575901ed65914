"""What the base install promises: ``import fasthg`` and its ops and modules need only torch, triton
and numpy; a feature that needs the [train] extra says so; the version and type marker ship."""
import importlib.metadata
import inspect
import importlib.resources
import os
import subprocess
import sys

import pytest

import fasthg
from fasthg import cli, extras, train
from fasthg.pose.images import read_image

TRAIN_EXTRA = ("cv2", "h5py", "matplotlib", "tqdm", "scipy", "pycocotools", "tensorboard")


def test_import_fasthg_loads_none_of_the_training_packages():
    # torch itself imports tqdm when it is there (torch.hub), so count only what fasthg adds.
    script = ("import sys, torch, triton, numpy; before = set(sys.modules); "
              "import fasthg, fasthg.ops, fasthg.nn, fasthg.reference; "
              "print(' '.join(sorted(set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert "fasthg" in loaded
    assert loaded.isdisjoint(TRAIN_EXTRA), sorted(loaded & set(TRAIN_EXTRA))


def test_a_model_runs_without_the_training_packages():
    blocked = ", ".join(f"{name!r}: None" for name in TRAIN_EXTRA)
    script = (f"import sys; sys.modules.update({{{blocked}}}); import torch, fasthg; "
              "model = fasthg.PoseNet(1, 16, 16).eval(); print(tuple(model(torch.rand(1, 64, 64, 3)).shape))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "(1, 1, 16, 16, 16)"


def test_a_feature_needing_a_missing_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8 not decoded: reading it needs OpenCV first")
    with pytest.raises(ImportError, match=r"^opencv-python-headless is not installed \(fasthg's \[train\] extra\): "
                                          r"pip install 'fasthg\[train\]'$"):
        read_image(str(tmp_path / "photo.jpg"))


def test_a_command_without_the_training_packages_is_one_line_and_writes_nothing(monkeypatch, capsys, tmp_path):
    for name in ("tqdm", "matplotlib"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(SystemExit) as stop:
        cli.run(train.main, ["--output", str(tmp_path / "run")])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: matplotlib, tqdm are not installed (fasthg's [train] extra): pip install 'fasthg[train]'\n"
    assert os.listdir(tmp_path) == []


def test_a_broken_package_keeps_its_own_error(monkeypatch):
    # a package that is installed but fails inside is not reported as missing
    with pytest.raises(ModuleNotFoundError, match="no_such_inner_module"):
        extras.require("json.no_such_inner_module")


def test_the_version_and_the_type_marker_ship():
    assert fasthg.__version__ == importlib.metadata.version("fasthg")
    assert importlib.resources.files("fasthg").joinpath("py.typed").is_file()


def _public_callables():
    """fasthg's public functions and the public methods its public classes define (not inherit from torch)."""
    namespaces = [fasthg, fasthg.ops, fasthg.nn]  # fasthg.reference is the tests' oracle
    for namespace in namespaces:
        for name in dir(namespace):
            value = getattr(namespace, name)
            if name.startswith("_") or not getattr(value, "__module__", "").startswith("fasthg"):
                continue
            if isinstance(value, type):
                for method_name, method in vars(value).items():
                    if callable(method) and not isinstance(method, type) and (not method_name.startswith("_") or method_name in ("__init__", "__call__")):
                        yield f"{value.__module__}.{value.__qualname__}.{method_name}", method
            elif callable(value):
                yield f"{value.__module__}.{name}", value


@pytest.mark.parametrize("name, function", sorted(_public_callables(), key=lambda item: item[0]), ids=lambda v: v if isinstance(v, str) else "")
def test_the_public_api_has_type_hints(name, function):
    signature = inspect.signature(function)
    bare = [parameter.name for parameter in signature.parameters.values()
            if parameter.name != "self" and parameter.annotation is inspect.Parameter.empty]
    assert not bare, f"{name}: parameters without a type hint: {bare}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type hint"
