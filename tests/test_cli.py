"""``python -m fasthg.evaluate`` and ``python -m fasthg.predict`` on a tiny trained run, and bad input
to every command: a one-line message, a non-zero exit status, no traceback."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fasthg import cli, distributed, evaluate, predict, train
from fasthg.errors import UserError
from fasthg.training.options import parse as parse_train_options
from fasthg.data import SyntheticPoses
from test_train import ENVIRONMENT, train as run_training


# session: made once per worker
@pytest.fixture(scope="session")
def run_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("runs") / "tiny")
    run_training("--epochs", "1", "--output", folder)
    return folder


def run_command(module, argv, capsys):
    """Runs a command-line program in this process; returns (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        cli.run(module.main, argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip-test"])
def test_evaluate_prints_a_table_and_writes_json(run_folder, capsys, tmp_path, flip):
    path = str(tmp_path / "evaluation.json")
    status, out, _ = run_command(evaluate, ["--checkpoint", run_folder, "--json", path] + (["--flip-test"] if flip else []), capsys)
    assert status == 0
    assert "l_elbow" in out and "mean (mpii)" in out and "total all16" in out
    with open(path) as file:
        report = json.load(file)
    assert report["flip_test"] is flip and report["items"] == 8
    assert set(report["pckh"]) == {"mpii", "all16", "mmpose"}
    assert len(report["pckh"]["mpii"]["per_joint"]) == 16


def test_evaluate_writes_into_the_run_folder_by_default(run_folder, capsys):
    status, _, _ = run_command(evaluate, ["--checkpoint", os.path.join(run_folder, "checkpoints", "last.pt")], capsys)
    assert status == 0 and os.path.exists(os.path.join(run_folder, "evaluation.json"))


def test_predict_writes_keypoints_in_image_coordinates_and_overlays(run_folder, capsys, tmp_path):
    image = SyntheticPoses("val", 1, 64)[0]["image"]
    large = cv2.resize(image, (160, 96))  # not the model's size: the crop maps back to these pixels
    paths = [str(tmp_path / "person.png"), str(tmp_path / "other" / "person.png")]
    os.makedirs(os.path.dirname(paths[1]))
    for path in paths:
        cv2.imwrite(path, large[..., ::-1])
    output = str(tmp_path / "out")
    status, out, _ = run_command(predict, [*paths, "--checkpoint", run_folder, "--output", output, "--box", "20", "0", "140", "96"], capsys)
    assert status == 0, out
    with open(os.path.join(output, "keypoints.json")) as file:
        records = json.load(file)
    assert [record["image"] for record in records] == paths
    assert records[0]["center"] == [80.0, 48.0] and records[0]["scale"] == pytest.approx(120 * 1.25 / 200)
    joints = records[0]["keypoints"]
    assert [joint["joint"] for joint in joints][:2] == ["r_ankle", "r_knee"]
    assert all(np.isfinite([joint["x"], joint["y"], joint["confidence"]]).all() for joint in joints)
    overlays = {record["overlay"] for record in records}
    assert overlays == {"person.pose.png", "person-1.pose.png"}
    assert cv2.imread(os.path.join(output, "person.pose.png")).shape == (96, 160, 3)


@pytest.fixture
def corrupt_checkpoint(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"\x00garbage, not a checkpoint" * 10)
    return str(path)


@pytest.mark.parametrize("module, argv, message", [
    (train, ["--dataset", "mpii", "--data-dir", "/nonexistent/images"], "MPII image folder not found: /nonexistent/images"),
    (train, ["--dataset", "mpii"], "--dataset mpii needs --data-dir"),
    (train, ["--input-size", "100"], "--input-size: expected a multiple of 64"),
    (train, ["--batch-size", "1"], "--batch-size: expected at least 2"),
    (train, ["--threads", "0"], "--threads: expected at least 1, got 0"),
    (train, ["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA device"),
    (train, ["--device", "tpu"], "--device: expected auto, cpu, cuda or cuda:N"),
    (train, ["--resume", "/nonexistent/run"], "checkpoint not found: /nonexistent/run"),
    (train, ["--resume", "CORRUPT"], "is corrupt or not a PyTorch file"),
    (evaluate, ["--checkpoint", "CORRUPT"], "is corrupt or not a PyTorch file"),
    (predict, ["/nonexistent/image.jpg", "--checkpoint", "RUN"], "image not found: /nonexistent/image.jpg"),
    (predict, ["IMAGE", "--checkpoint", "RUN", "--box", "5", "5", "1", "1"], "--box: expected finite x0 < x1 and y0 < y1"),
    (predict, ["IMAGE", "--checkpoint", "RUN", "--center", "5", "5"], "--center and --scale go together"),
])
def test_user_errors_are_one_line_messages(module, argv, message, capsys, corrupt_checkpoint, run_folder, tmp_path):
    image = str(tmp_path / "image.png")
    cv2.imwrite(image, np.zeros((64, 64, 3), np.uint8))
    replacements = {"CORRUPT": corrupt_checkpoint, "RUN": run_folder, "IMAGE": image}
    argv = [replacements.get(argument, argument) for argument in argv]
    status, out, err = run_command(module, [*argv, "--output", str(tmp_path / "out")] if module is train else argv, capsys)
    assert status == 2
    assert err == f"error: {err[len('error: '):]}" and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, message", [
    (["--heatmap-style", "gaussian"], "invalid choice: 'gaussian'"),
    (["--epochs", "many"], "invalid int value: 'many'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_unknown_option_values_exit_with_usage(argv, message, capsys):
    status, _, err = run_command(train, argv, capsys)
    assert status == 2 and message in err and "Traceback" not in err


def test_resume_refuses_to_change_the_model(run_folder, capsys):
    status, _, err = run_command(train, ["--resume", run_folder, "--inp-dim", "32"], capsys)
    assert status == 2 and "--inp-dim: cannot change when resuming" in err


def test_resuming_a_checkpoint_outside_a_run_folder_needs_output(run_folder, capsys, tmp_path):
    loose = str(tmp_path / "loose.pt")
    shutil.copy(os.path.join(run_folder, "checkpoints", "last.pt"), loose)
    status, _, err = run_command(train, ["--resume", loose], capsys)
    assert status == 2
    assert err == f"error: --resume: {loose} is not in a run folder's checkpoints/; give --output, the folder to write the run to\n"
    assert os.listdir(tmp_path) == ["loose.pt"]


@pytest.fixture
def config_file(tmp_path):
    def write(content):
        path = tmp_path / "config.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)
    return write


def test_config_reads_a_runs_options_and_the_command_line_overrides_them(config_file):
    path = config_file({"nstack": 1, "inp_dim": 16, "epochs": 9, "lr": 1, "output": "runs/the-original"})
    config, _, _ = parse_train_options(["--config", path, "--epochs", "2"])
    assert (config.nstack, config.inp_dim, config.epochs, config.lr) == (1, 16, 2, 1)
    assert config.input_size == 64 and config.dataset == "synthetic"  # the defaults fill what it lacks
    assert config.output != "runs/the-original"  # a new run never writes into the run it copied


@pytest.mark.parametrize("content, message", [
    (None, "--config: CONFIG not found"),
    ("{not json", "--config: CONFIG is not a readable JSON file"),
    ([1, 2], "--config: CONFIG holds a JSON list, expected an object of options"),
    ({"epochs": 2, "colour": "red"}, "--config: CONFIG has options that fasthg.train does not know: colour"),
    ({"epochs": "6"}, "--config: CONFIG: epochs must be int, got '6'"),
    ({"epochs": True}, "--config: CONFIG: epochs must be int, got True"),
    ({"data_dir": 3}, "--config: CONFIG: data_dir must be str | None, got 3"),
    ({"dataset": "imagenet"}, "--config: CONFIG: dataset must be one of synthetic, mpii, coco, got 'imagenet'"),
    ({"epochs": 0}, "--epochs: expected at least 1, got 0"),
])
def test_a_bad_config_file_is_one_line(config_file, capsys, tmp_path, content, message):
    path = str(tmp_path / "absent.json") if content is None else config_file(content)
    status, _, err = run_command(train, ["--config", path, "--output", str(tmp_path / "run")], capsys)
    assert status == 2 and err.startswith(f"error: {message.replace('CONFIG', path)}") and err.count("\n") == 1, err
    assert not os.path.exists(tmp_path / "run")


def test_config_and_resume_do_not_go_together(run_folder, capsys):
    status, _, err = run_command(train, ["--resume", run_folder, "--config", os.path.join(run_folder, "config.json")], capsys)
    assert status == 2 and "give --config or --resume, not both" in err


def test_the_installed_command_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fasthg.train", "--dataset", "mpii", "--data-dir", str(tmp_path / "none"),
                             "--output", str(tmp_path / "run")], env=ENVIRONMENT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: MPII image folder not found") and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_on_a_machine_without_one_is_one_line(capsys, tmp_path):
    status, _, err = run_command(train, ["--device", "cuda", "--output", str(tmp_path / "out")], capsys)
    assert status == 2 and err == "error: --device cuda: no CUDA device is available here (use --device cpu)\n"


@pytest.fixture
def two_gpus(monkeypatch):
    """A stand-in for a machine with two CUDA devices; records what torch.cuda.set_device was given."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


def test_the_named_device_becomes_current(two_gpus):
    assert distributed.use_device("cuda:1") == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)], "cuda:1 was not made the current device"


def test_a_device_that_does_not_exist_is_a_user_error(two_gpus):
    with pytest.raises(UserError, match=r"--device cuda:7: no such device here \(2 CUDA device\(s\): cuda:0 to cuda:1\)"):
        distributed.use_device("cuda:7")
    assert two_gpus == []
