"""Test-suite set-up: kernels run in the Triton interpreter on CPU tensors.

TRITON_INTERPRET must be in the environment before any module defining a ``@triton.jit`` kernel
is imported, so it is set here, before fasthg is. Comparison helpers live in ``harness.py``.
"""
import os

os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

import fasthg  # noqa: E402

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
