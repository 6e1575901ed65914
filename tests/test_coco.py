"""COCO person keypoints (fasthg.data.coco, fasthg.pose.coco_eval) on a tiny COCO-format set written
here: top-down crops from the boxes, pycocotools' OKS AP of known predictions, and bad files."""
import json
import math
import re

import cv2
import numpy as np
import pytest
import torch

from fasthg import cli, evaluate
from fasthg.pose.coco_eval import oks_average_precision
from fasthg.data import make_dataset
from fasthg.data.coco import read_coco_keypoints
from fasthg.errors import MissingFileError, UserError
from fasthg.joint_sets import COCO_17
from pose_checkpoints import fasthg_checkpoint, tiny_posenet
from test_train import train as run_training

# Three images of one person each: two large (area 200^2 > 96^2) and one medium (60^2).
PEOPLE = [(1, (50.0, 50.0, 200.0, 200.0), 40000.0), (2, (20.0, 30.0, 200.0, 200.0), 40000.0),
          (3, (100.0, 100.0, 60.0, 60.0), 3600.0)]


def _keypoints(box, labelled=13):
    """17 keypoints spread over ``box``: the first ``labelled`` seen (v = 2), the next hidden (v = 1), the last unlabelled."""
    x, y, width, height = box
    points = np.zeros((17, 3))
    for j in range(17):
        points[j] = x + width * (j + 1) / 18, y + height * ((5 * j) % 17 + 1) / 18, 2 if j < labelled else 1
    points[16] = 0, 0, 0
    return points


def coco_json(categories=None):
    images = [{"id": image, "file_name": f"{image:012d}.jpg", "width": 320, "height": 320} for image, _, _ in PEOPLE]
    annotations = [{"id": 10 + image, "image_id": image, "category_id": 1, "bbox": list(box), "area": area, "iscrowd": 0,
                    "num_keypoints": 16, "keypoints": _keypoints(box).ravel().tolist()} for image, box, area in PEOPLE]
    person = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_17.names),
              "skeleton": [[a + 1, b + 1] for a, b, _ in COCO_17.bones]}
    return {"images": images, "annotations": annotations, "categories": categories or [person]}


@pytest.fixture
def coco_folder(tmp_path):
    for split in ("train2017", "val2017"):
        (tmp_path / split).mkdir()
        for image, _, _ in PEOPLE:
            cv2.imwrite(str(tmp_path / split / f"{image:012d}.jpg"), np.zeros((320, 320, 3), np.uint8))
    (tmp_path / "annotations").mkdir()
    for split in ("train2017", "val2017"):
        (tmp_path / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(coco_json()))
    return tmp_path


def _perfect():
    return np.array([_keypoints(box)[:, :2] for _, box, _ in PEOPLE])


def test_perfect_predictions_have_ap_1():
    stats = oks_average_precision(coco_json(), [1, 2, 3], _perfect(), [0.9, 0.8, 0.1])
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    assert stats["APm"] == pytest.approx(1.0) and stats["APl"] == pytest.approx(1.0)


def test_a_known_perturbation_gives_the_ap_counted_by_hand():
    """The medium person's labelled joints moved so that each term exp(-d^2 / (2 area (2 sigma)^2))
    is 0.62: its OKS is 0.62, so it matches at t = 0.50, 0.55, 0.60 and misses at the 7 others.
    There the two large people (higher scores) are found and it is not: recall 2/3 at precision
    1, which covers 67 of the 101 recall levels (0, 0.01, ..., 0.66)."""
    predictions = _perfect()
    area, labelled = PEOPLE[2][2], _keypoints(PEOPLE[2][1])[:, 2] > 0
    shift = np.sqrt(-math.log(0.62) * 2 * area) * 2 * np.array(COCO_17.oks_sigmas)
    predictions[2, labelled, 0] += shift[labelled]
    stats = oks_average_precision(coco_json(), [1, 2, 3], predictions, [0.9, 0.8, 0.1])
    partial = 67 / 101
    assert stats["AP"] == pytest.approx((3 + 7 * partial) / 10)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(partial)
    assert stats["APm"] == pytest.approx(0.3) and stats["APl"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx((3 + 7 * 2 / 3) / 10)


def test_crops_are_the_squares_around_the_person_boxes(coco_folder):
    dataset = make_dataset("coco", "val", 64, image_dir=str(coco_folder))
    assert len(dataset) == 3 and dataset.joint_set is COCO_17
    item = dataset[0]
    # Box (50, 50, 200, 200): centre (150, 150), side 1.25 x 200 = 250 pixels onto 64.
    original = _keypoints(PEOPLE[0][1])
    np.testing.assert_allclose(item["keypoints"], 32 + (original[:, :2] - 150) * 64 / 250, atol=1e-4)
    assert item["annotated"].tolist() == [True] * 16 + [False]
    assert item["normalize"] == pytest.approx(200.0)  # sqrt(area), OKS's object scale
    assert item["image"].shape == (64, 64, 3)


def _run(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.run(evaluate.main, argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def test_evaluate_on_coco_reports_pycocotools_stats(coco_folder, tmp_path, capsys):
    checkpoint, report_path = str(tmp_path / "weights.pt"), str(tmp_path / "evaluation.json")
    torch.save(fasthg_checkpoint(tiny_posenet(joints=17).state_dict()), checkpoint)
    status, out, _ = _run(["--checkpoint", checkpoint, "--dataset", "coco", "--data-dir", str(coco_folder),
                           "--json", report_path], capsys)
    assert status == 0
    with open(report_path) as file:
        report = json.load(file)
    assert list(report["oks"]) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    assert "pckh" not in report and all(-1 <= value <= 1 for value in report["oks"].values())
    assert "APm" in out and "OKS AP" in out


@pytest.mark.parametrize("damage, words", [
    ("no keypoints", "has no person keypoints"),
    ("truncated", "is not a readable JSON file"),
    ("missing image", "COCO image not found: .*000000000002.jpg"),
])
def test_bad_coco_input_is_one_line_and_status_2(coco_folder, tmp_path, capsys, damage, words):
    annotation = coco_folder / "annotations" / "person_keypoints_val2017.json"
    if damage == "no keypoints":
        annotation.write_text(json.dumps(coco_json([{"id": 1, "name": "person", "supercategory": "person"}])))
    elif damage == "truncated":
        annotation.write_text(annotation.read_text()[:200])
    else:
        (coco_folder / "val2017" / "000000000002.jpg").unlink()
    checkpoint, report_path = str(tmp_path / "weights.pt"), tmp_path / "evaluation.json"
    torch.save(fasthg_checkpoint(tiny_posenet(joints=17).state_dict()), checkpoint)
    status, _, err = _run(["--checkpoint", checkpoint, "--dataset", "coco", "--data-dir", str(coco_folder),
                           "--json", str(report_path)], capsys)
    assert status == 2 and err.count("\n") == 1
    assert re.search(words, err)
    assert not report_path.exists()


def test_an_annotation_without_keypoints_or_a_missing_file_is_named(tmp_path):
    data = coco_json()
    del data["annotations"][1]["keypoints"]
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="annotation 12 lacks its keypoints"):
        read_coco_keypoints(str(path))
    with pytest.raises(MissingFileError, match="COCO annotation file not found"):
        read_coco_keypoints(str(tmp_path / "absent.json"))


def test_training_on_coco_predicts_17_joints_and_records_oks_ap(coco_folder, tmp_path):
    output = tmp_path / "run"
    run_training("--dataset", "coco", "--data-dir", str(coco_folder), "--batch-size", "2", "--epochs", "1",
                 "--workers", "0", "--output", str(output))
    with open(output / "results.json") as file:
        results = json.load(file)
    assert set(results["oks"]) >= {"AP", "AP50", "AP75", "APm", "APl", "AR"} and "pckh" not in results
    with open(output / "metrics.jsonl") as file:
        assert "oks_ap" in json.loads(file.readline())
    weights = torch.load(output / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert weights["outs.0.conv.weight"].shape[0] == 17  # oup_dim follows the joint set
