"""The commands take any PoseNet checkpoint: ``predict`` and ``evaluate`` on princeton-vl's files,
``train --checkpoint`` to fine-tune them; ``predict`` is a thin layer over fasthg.PoseEstimator
(the same keypoints), handles grayscale and RGBA files, and leaves nothing half-written."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

import fasthg
from fasthg import evaluate, predict, train
from pose_checkpoints import INP_DIM, NSTACK, tiny_posenet, write_checkpoints, write_non_posenets
from test_cli import run_command


ON_CPU = ["--device", "cpu"]
SMALL = ["--input-size", "64"]  # princeton's weights are used at 256 pixels unless told


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_checkpoints(str(tmp_path_factory.mktemp("checkpoints")), tiny_posenet().state_dict())


@pytest.fixture
def photo(tmp_path):
    """A 90x70 colour image file and its RGB pixels."""
    pixels = np.random.default_rng(3).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    path = str(tmp_path / "photo.png")
    cv2.imwrite(path, pixels[..., ::-1])
    return path, pixels


def read_records(folder):
    with open(os.path.join(folder, "keypoints.json")) as file:
        return json.load(file)


@pytest.mark.parametrize("kind, flip", [("princeton", False), ("princeton tar", True), ("state_dict", False)])
def test_predict_gives_the_estimators_keypoints(kind, flip, checkpoints, photo, tmp_path, capsys):
    path, pixels = photo
    output = str(tmp_path / "out")
    status, _, err = run_command(predict, [path, "--checkpoint", checkpoints[kind], "--output", output,
                                           "--box", "5", "10", "60", "80", *SMALL, *ON_CPU]
                                 + (["--flip-test"] if flip else []), capsys)
    assert status == 0 and "note:" not in err  # princeton's weights are not the synthetic ones
    record, = read_records(output)
    pose = fasthg.PoseEstimator(checkpoints[kind], device="cpu", input_size=64, flip_test=flip)(pixels, (5, 10, 60, 80))
    assert record["keypoints"] == pose.as_dict()["keypoints"]
    assert record["center"] == [32.5, 45.0] and record["scale"] == pytest.approx(70 * 1.25 / 200)


def test_predict_on_synthetic_weights_says_they_are(checkpoints, photo, tmp_path, capsys):
    status, _, err = run_command(predict, [photo[0], "--checkpoint", checkpoints["fasthg run"],
                                           "--output", str(tmp_path / "out"), *ON_CPU], capsys)
    assert status == 0 and err.startswith("note: ") and "synthetic stick figures, not on photos" in err


def test_grayscale_and_rgba_files_are_read_as_rgb(checkpoints, photo, tmp_path, capsys):
    path, pixels = photo
    gray, rgba = str(tmp_path / "gray.png"), str(tmp_path / "rgba.png")
    cv2.imwrite(gray, pixels[..., 1])
    cv2.imwrite(rgba, np.dstack([pixels[..., ::-1], np.full(pixels.shape[:2], 128, np.uint8)]))
    output = str(tmp_path / "out")
    status, _, _ = run_command(predict, [gray, rgba, path, "--checkpoint", checkpoints["princeton"], "--output", output,
                                         *SMALL, *ON_CPU], capsys)
    assert status == 0
    gray_record, rgba_record, rgb_record = read_records(output)
    assert rgba_record["keypoints"] == rgb_record["keypoints"]
    estimator = fasthg.PoseEstimator(checkpoints["princeton"], device="cpu", input_size=64)
    assert gray_record["keypoints"] == estimator(pixels[..., 1]).as_dict()["keypoints"]


@pytest.mark.parametrize("case, message", [
    ("undecodable", "could not be decoded"),
    ("box outside the second image", "--box: (40.0, 40.0, 60.0, 60.0) lies outside the 30x30 image"),
])
def test_a_failing_image_leaves_no_output(case, message, checkpoints, photo, tmp_path, capsys):
    second = str(tmp_path / "second.png")
    if case == "undecodable":
        with open(second, "wb") as file:
            file.write(b"\x89PNG\r\n not really")
    else:
        cv2.imwrite(second, np.zeros((30, 30, 3), np.uint8))
    output = str(tmp_path / "out")
    status, _, err = run_command(predict, [photo[0], second, "--checkpoint", checkpoints["princeton"], "--output", output,
                                           "--box", "40", "40", "60", "60", *SMALL, *ON_CPU], capsys)
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not os.path.exists(output)


def test_wrong_checkpoints_are_one_line(tmp_path, photo, capsys):
    for path, words in write_non_posenets(str(tmp_path)).values():
        for module, argv in ((predict, [photo[0], "--checkpoint", path]), (evaluate, ["--checkpoint", path]),
                             (train, ["--checkpoint", path, "--output", str(tmp_path / "run")])):
            status, _, err = run_command(module, [*argv, *ON_CPU], capsys)
            assert status == 2 and words in err and err.count("\n") == 1 and "weights_only" not in err, err


def test_evaluate_scores_princetons_checkpoint(checkpoints, tmp_path, capsys):
    path = str(tmp_path / "evaluation.json")
    status, _, err = run_command(evaluate, ["--checkpoint", checkpoints["princeton"], *ON_CPU], capsys)
    assert status == 2 and "--dataset: " in err and "is not a fasthg run" in err
    status, out, _ = run_command(evaluate, ["--checkpoint", checkpoints["princeton"], "--dataset", "synthetic",
                                            "--val-size", "2", "--json", path, *ON_CPU], capsys)
    assert status == 0 and "total all16" in out
    with open(path) as file:
        assert json.load(file)["items"] == 2


def test_train_fine_tunes_princetons_checkpoint(checkpoints, tmp_path, capsys):
    run = str(tmp_path / "run")
    tiny = ["--input-size", "64", "--batch-size", "2", "--train-size", "2", "--val-size", "2", "--epochs", "1",
            "--amp", "off", *ON_CPU]
    status, _, err = run_command(train, ["--checkpoint", checkpoints["princeton"], "--inp-dim", "32", *tiny,
                                         "--output", run], capsys)
    assert status == 2 and f"--inp-dim: the --checkpoint weights have {INP_DIM}, got 32" in err
    status, _, _ = run_command(train, ["--checkpoint", checkpoints["princeton"], *tiny, "--output", run], capsys)
    assert status == 0
    with open(os.path.join(run, "config.json")) as file:
        config = json.load(file)
    assert (config["nstack"], config["inp_dim"], config["checkpoint"]) == (NSTACK, INP_DIM, checkpoints["princeton"])


def test_fine_tuning_starts_from_the_checkpoints_weights(checkpoints, tmp_path):
    from fasthg import distributed
    from fasthg.training import trainer
    from fasthg.training.options import parse
    config, _, given = parse(["--checkpoint", checkpoints["state_dict"], "--input-size", "64", "--train-size", "2",
                              "--val-size", "2", "--batch-size", "2", "--output", str(tmp_path / "run"), *ON_CPU])
    config, weights = train.fine_tuning(config, given)
    model = trainer.Trainer(config, distributed.Context(0, 1, torch.device("cpu")), None, weights).model
    expected = tiny_posenet().state_dict()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in expected.items())
