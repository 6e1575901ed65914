"""Any PoseNet checkpoint loads (fasthg runs, princeton-vl's checkpoint.pt and .pth.tar, bare
state_dicts, dicts in memory) with its architecture read from the tensors' shapes, and anything
else is refused with one clear message."""
import pytest
import torch

import fasthg
from fasthg.errors import InvalidValueError, MissingFileError
from fasthg.pose.state_dicts import PoseNetArchitecture, posenet_architecture
from fasthg.pose.weights import load_pose_model, photo_notice, read_pose_weights
from pose_checkpoints import (
    INP_DIM, INPUT_SIZE, JOINTS, NSTACK, fasthg_checkpoint, princeton_checkpoint, tiny_posenet, write_checkpoints,
    write_non_posenets,
)


KINDS = ("fasthg run", "fasthg file", "princeton", "princeton tar", "state_dict")


@pytest.fixture(scope="module")
def reference():
    return tiny_posenet()


@pytest.fixture(scope="module")
def checkpoints(reference, tmp_path_factory):
    return write_checkpoints(str(tmp_path_factory.mktemp("checkpoints")), reference.state_dict())


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_loads_with_the_reference_weights(kind, checkpoints, reference):
    model, info = load_pose_model(checkpoints[kind], torch.device("cpu"))
    assert info.architecture == PoseNetArchitecture(NSTACK, INP_DIM, JOINTS, 0)
    assert not model.training
    expected = reference.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


@pytest.mark.parametrize("kind", KINDS)
def test_what_the_weights_were_trained_for(kind, checkpoints):
    _, info = read_pose_weights(checkpoints[kind])
    if kind.startswith("fasthg"):  # the run's config says
        assert (info.trained_on, info.input_size, info.run_config["nstack"]) == ("synthetic", INPUT_SIZE, NSTACK)
        assert "synthetic stick figures, not on photos" in photo_notice(info)
    else:  # princeton's MPII set-up
        assert (info.trained_on, info.input_size, info.heatmap_style, info.sigma) == (None, 256, "princeton", 1.0)
        assert info.run_config is None and photo_notice(info) is None


def test_dicts_in_memory_load_as_files_do(reference):
    state = reference.state_dict()
    for saved in (state, princeton_checkpoint(state), fasthg_checkpoint(state, dataset="mpii")):
        loaded, info = read_pose_weights(saved)
        assert loaded.keys() == state.keys() and info.architecture.nstack == NSTACK


@pytest.mark.parametrize("nstack, inp_dim, joints, increase", [(2, 4, 5, 0), (1, 6, 16, 2)])
def test_the_architecture_is_read_from_the_shapes(nstack, inp_dim, joints, increase):
    state = fasthg.reference.PoseNet(nstack, inp_dim, joints, increase=increase).state_dict()
    assert posenet_architecture(state) == PoseNetArchitecture(nstack, inp_dim, joints, increase)
    model, _ = load_pose_model(state, torch.device("cpu"))
    assert model.outs[0].conv.out_channels == joints and len(model.outs) == nstack


def test_non_posenet_files_get_one_line_naming_what_was_expected(tmp_path):
    for kind, (path, words) in write_non_posenets(str(tmp_path)).items():
        with pytest.raises(InvalidValueError) as error:
            read_pose_weights(path)
        message = str(error.value)
        assert words in message and path in message and "\n" not in message, (kind, message)
        assert "weights_only" not in message, f"{kind}: relays PyTorch's advice to load unsafely: {message}"


def test_missing_and_incomplete_checkpoints(tmp_path, reference):
    with pytest.raises(MissingFileError, match="checkpoint not found"):
        read_pose_weights(str(tmp_path / "none.pt"))
    state = dict(reference.state_dict())
    del state["outs.0.conv.bias"]
    with pytest.raises(InvalidValueError, match=r"not a complete PoseNet: .*missing keys \['outs.0.conv.bias'\]"):
        load_pose_model(state, torch.device("cpu"))
    state["outs.0.conv.bias"] = torch.zeros(3)
    with pytest.raises(InvalidValueError, match=r"tensors of other shapes: outs.0.conv.bias \(3,\) \(expected \(16,\)\)"):
        load_pose_model(state, torch.device("cpu"))
    with pytest.raises(TypeError, match="checkpoint_or_model: expected a path, a run folder, a state_dict or a PoseNet module"):
        read_pose_weights(42)
