"""Test-suite set-up: kernels run in the Triton interpreter on CPU tensors.

TRITON_INTERPRET must be in the environment before any module defining a ``@triton.jit`` kernel
is imported, so it is set here, before fasthg is. Comparison helpers live in ``harness.py``.

The session stops at once when ``fasthg`` or ``fasthg.kernels`` is imported from another tree than
the one under test: an editable install maps them to the checkout it was made from, so a second
checkout sharing one virtual environment would otherwise test the first one's code.
"""
import os
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

import fasthg  # noqa: E402
import fasthg.kernels  # noqa: E402
from interpreter_patching import check_overflow, patch_language_once_per_launch  # noqa: E402

TREE = Path(__file__).resolve().parents[1]


def check_imported_from(tree):
    """pytest.exit unless fasthg and fasthg.kernels are the packages in ``tree``."""
    for package, folder in ((fasthg, tree / "fasthg"), (fasthg.kernels, tree / "kernels")):
        found = Path(package.__file__).resolve().parent
        if found != folder:
            pytest.exit(f"{package.__name__} is imported from {found}, not from the tree under test ({folder}): "
                        f"reinstall it from this checkout (`pip install -e .` in {tree}) or use this checkout's "
                        "own virtual environment (`make setup` creates .venv)", returncode=pytest.ExitCode.USAGE_ERROR)


check_imported_from(TREE)
# The interpreter's redundant work, skipped (what and why: interpreter_patching.py).
patch_language_once_per_launch()
check_overflow(False)

# Property tests (test_properties.py and friends): "ci" is bounded and reproducible (the same
# examples every run); "long" explores, selected with `pytest --hypothesis-profile long`.
# CI does not shrink a failure (the interpreter makes shrinking take minutes): it reports the
# example as drawn, and the long profile shrinks it.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None, print_blob=True,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture
def triton_backend():
    """Runs the test with the Triton kernels (in the interpreter on CPU tensors)."""
    with fasthg.backend("triton"):
        yield


@pytest.fixture
def torch_backend():
    """Runs the test with the torch path."""
    with fasthg.backend("torch"):
        yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
