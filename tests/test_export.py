"""``python -m fasthg.export``: TorchScript and ONNX files of any PoseNet checkpoint that compute
what the PyTorch reference computes, at any batch size."""
import os

import pytest
import torch

from fasthg import export
from pose_checkpoints import INPUT_SIZE, JOINTS, NSTACK, tiny_posenet, write_checkpoints
from test_cli import run_command


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoints(str(tmp_path_factory.mktemp("checkpoints")), tiny_posenet().state_dict())["princeton"]


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, INPUT_SIZE, INPUT_SIZE, 3, generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def expected(images):
    with torch.no_grad():
        return tiny_posenet()(images)


def exported(form, checkpoint, folder, capsys):
    path = os.path.join(folder, f"posenet.{form}")
    status, out, _ = run_command(export, ["--checkpoint", checkpoint, "--format", form, "--output", path,
                                          "--input-size", str(INPUT_SIZE)], capsys)
    assert status == 0 and f"heatmaps (N, {NSTACK}, {JOINTS}, {INPUT_SIZE // 4}, {INPUT_SIZE // 4})" in out
    return path


# TorchScript is what issue #17 asks for and what deployments still load; torch 2.13 marks
# torch.jit.trace/save/load deprecated, which the README says beside the command.
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")
def test_torchscript_matches_the_reference(checkpoint, images, expected, tmp_path, capsys):
    model = torch.jit.load(exported("torchscript", checkpoint, str(tmp_path), capsys))
    with torch.no_grad():
        torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)  # traced at N = 1, run at 3


def test_onnx_matches_the_reference(checkpoint, images, expected, tmp_path, capsys):
    pytest.importorskip("onnx", reason="the onnx package is not installed (pip install onnx)")
    runtime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
    path = exported("onnx", checkpoint, str(tmp_path), capsys)
    session = runtime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and session.get_outputs()[0].name == "heatmaps"
    heatmaps, = session.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(heatmaps), expected, rtol=1e-5, atol=1e-5)


def test_bad_options_are_one_line(checkpoint, tmp_path, capsys):
    output = str(tmp_path / "model.pt")
    status, _, err = run_command(export, ["--checkpoint", checkpoint, "--format", "torchscript", "--output", output,
                                          "--input-size", "100"], capsys)
    assert status == 2 and "--input-size: expected a multiple of 64" in err and not os.path.exists(output)
