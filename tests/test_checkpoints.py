"""Checkpoint files: atomic writes, clear errors for broken files, RNG states that round-trip."""
import os
import random

import numpy as np
import pytest
import torch

from fasthg.training.checkpoints import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from fasthg.errors import MissingFileError, UserError


def _state(value):
    return {"model": {"weight": torch.full((3,), float(value))}, "config": {"nstack": 1}}


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path):
    path = str(tmp_path / "last.pt")
    save_checkpoint(_state(1), path)
    with pytest.raises(Exception):
        save_checkpoint({**_state(2), "unpicklable": lambda: None}, path)
    assert os.listdir(tmp_path) == ["last.pt"]
    assert torch.equal(load_checkpoint(path)["model"]["weight"], torch.ones(3))
    save_checkpoint(_state(3), path)
    assert torch.equal(load_checkpoint(path)["model"]["weight"], torch.full((3,), 3.0))


def test_a_run_folder_means_its_last_checkpoint(tmp_path):
    save_checkpoint(_state(4), str(tmp_path / "checkpoints" / "last.pt"))
    assert torch.equal(load_checkpoint(str(tmp_path))["model"]["weight"], torch.full((3,), 4.0))
    assert os.stat(tmp_path / "checkpoints" / "last.pt").st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_broken_checkpoints_are_user_errors(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(_state(5), str(path))
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a copy that died
    with pytest.raises(UserError, match="is corrupt or not a PyTorch file"):
        load_checkpoint(str(path))
    torch.save({"weight": torch.zeros(1)}, str(path))
    with pytest.raises(UserError, match="not a fasthg training checkpoint"):
        load_checkpoint(str(path))
    with pytest.raises(MissingFileError, match="checkpoint not found"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    state = capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    path = str(tmp_path / "rng.pt")
    save_checkpoint({"model": {}, "config": {}, "rng": state}, path)
    restore_rng(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
