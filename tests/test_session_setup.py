"""The test session's own set-up: it tests the tree it is run from (tests/conftest.py) and finds
the MPII annotations through one setting (tests/mpii_annotations.py)."""
import pytest

import mpii_annotations
from conftest import TREE, check_imported_from


def test_this_tree_is_the_one_imported():
    check_imported_from(TREE)  # returns: fasthg and fasthg.kernels come from this checkout


def test_another_checkout_stops_the_session_with_how_to_fix_it(tmp_path):
    with pytest.raises(pytest.exit.Exception, match=r"not from the tree under test .*pip install -e \."):
        check_imported_from(tmp_path)


def test_annotations_at_the_setting_s_path(tmp_path, monkeypatch):
    (tmp_path / "valid.h5").write_bytes(b"")
    monkeypatch.setenv(mpii_annotations.SETTING, str(tmp_path / "valid.h5"))
    assert mpii_annotations.valid_h5() == tmp_path / "valid.h5"


def test_missing_default_annotations_skip_saying_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.delenv(mpii_annotations.SETTING, raising=False)
    monkeypatch.setattr(mpii_annotations, "DEFAULT", tmp_path / "absent.h5")
    with pytest.raises(pytest.skip.Exception, match="set FASTHG_MPII_VALID_H5 to its path"):
        mpii_annotations.valid_h5()


def test_a_setting_naming_no_file_fails(tmp_path, monkeypatch):
    monkeypatch.setenv(mpii_annotations.SETTING, str(tmp_path / "absent.h5"))
    with pytest.raises(pytest.fail.Exception, match="FASTHG_MPII_VALID_H5=.*absent.h5: no such file"):
        mpii_annotations.valid_h5()
