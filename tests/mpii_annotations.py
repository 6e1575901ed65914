"""Where the tests find MPII's validation annotations (princeton-vl's ``valid.h5``), which the
repository does not hold.

One setting: the environment variable ``FASTHG_MPII_VALID_H5``, the path of the file. Unset, it
defaults to ``../shared/data/mpii/valid.h5`` relative to the repository's root, where CI puts it
(CI clones the repository into a folder beside ``shared/``). A test that needs the file calls
:func:`valid_h5`: where the default does not exist the test is skipped with a reason that says how
to provide it; a path given explicitly that does not exist fails the test (a wrong setting).
"""
import os
from pathlib import Path

import pytest

SETTING = "FASTHG_MPII_VALID_H5"
DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mpii" / "valid.h5"


def valid_h5():
    """The path of valid.h5 (see the module docstring)."""
    given = os.environ.get(SETTING)
    path = Path(given) if given else DEFAULT.resolve()
    if path.is_file():
        return path
    if given:
        pytest.fail(f"{SETTING}={given}: no such file (expected the path of MPII's valid.h5)")
    pytest.skip(f"MPII's valid.h5 not found at {path}: set {SETTING} to its path (princeton-vl/"
                "pytorch_stacked_hourglass, data/MPII/annot/valid.h5)")
