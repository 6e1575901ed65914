"""The MPII table (fasthg.pose.pckh_table) on a hand-computed case, and as ``python -m fasthg.evaluate``
prints and writes it."""
import json

import numpy as np
import pytest
import torch

from fasthg import cli, evaluate
from fasthg.joints import JOINT_NAMES
from fasthg.metrics import pckh
from fasthg.pose.pckh_table import body_part_table, format_body_part_table
from pose_checkpoints import fasthg_checkpoint, tiny_posenet


def _case():
    """Four people, head size 1, every joint exact except (person, joint, error): the errors and
    annotations below, from which the expected values in the tests are counted by hand."""
    errors = np.zeros((4, 16))
    j = JOINT_NAMES.index
    errors[[0, 1, 2, 3], j("r_wrist")] = [0.3, 0.7, 0.05, 0.05]
    errors[[0, 1], j("l_wrist")] = [0.05, 0.6]
    errors[3, j("head_top")] = 0.2
    errors[0, j("pelvis")] = 0.9
    errors[2, j("l_ankle")] = 0.5  # on the threshold: not strictly below it, so missed
    annotated = np.ones((4, 16), dtype=bool)
    annotated[[2, 3], j("l_wrist")] = False
    gt = np.zeros((4, 16, 2))
    pred = np.stack([errors, np.zeros_like(errors)], axis=-1)
    return pred, gt, annotated, np.ones(4)


def test_mmpose_mean_weights_the_14_joints_by_their_counts():
    # 54 annotated among the 14 (l_wrist twice), 3 missed: l_ankle, r_wrist, l_wrist.
    assert pckh(*_case(), convention="mmpose")["mean"] == pytest.approx(51 / 54)


def test_body_parts_and_means_at_both_thresholds():
    table = body_part_table(*_case())
    at_half, at_tenth = table["PCKh@0.5"], table["PCKh@0.1"]
    # @0.5: wrist (3/4 + 1/2) / 2; ankle (4/4 + 3/4) / 2; head (upper neck 1, head top 1).
    assert at_half["parts"] == pytest.approx({"Head": 1.0, "Shoulder": 1.0, "Elbow": 1.0, "Wrist": 0.625,
                                              "Hip": 1.0, "Knee": 1.0, "Ankle": 0.875})
    # mpii: 14 per-joint values summing to 14 - 1/4 - 1/4 - 1/2; all16: 62 annotated, 4 missed;
    # mmpose: 54 annotated without pelvis and thorax, 3 missed.
    assert at_half["means"] == pytest.approx({"mpii": 13 / 14, "all16": 58 / 62, "mmpose": 51 / 54})
    # @0.1 the errors 0.3 (r_wrist) and 0.2 (head_top) miss too.
    assert at_tenth["parts"] == pytest.approx({"Head": 0.875, "Shoulder": 1.0, "Elbow": 1.0, "Wrist": 0.5,
                                               "Hip": 1.0, "Knee": 1.0, "Ankle": 0.875})
    assert at_tenth["means"] == pytest.approx({"mpii": 12.5 / 14, "all16": 56 / 62, "mmpose": 49 / 54})
    assert at_tenth["per_joint"]["head_top"] == 0.75


def test_the_text_table_has_a_row_per_part_and_mean_in_percent():
    lines = format_body_part_table(body_part_table(*_case())).splitlines()
    assert lines[0].split() == ["body", "part", "PCKh@0.5", "PCKh@0.1"]
    rows = {line[:15].strip(): line[15:].split() for line in lines if not line.startswith("-")}
    assert rows["Wrist"] == ["62.5", "50.0"] and rows["Head"] == ["100.0", "87.5"]
    assert rows["Mean (mpii)"] == ["92.9", "89.3"] and rows["Total (all16)"] == ["93.5", "90.3"]
    assert rows["Mean (mmpose)"] == ["94.4", "90.7"]


def test_evaluate_prints_and_writes_the_table(tmp_path, capsys):
    checkpoint, report_path = str(tmp_path / "weights.pt"), str(tmp_path / "evaluation.json")
    torch.save(fasthg_checkpoint(tiny_posenet().state_dict()), checkpoint)
    with pytest.raises(SystemExit) as stop:
        cli.run(evaluate.main, ["--checkpoint", checkpoint, "--val-size", "4", "--json", report_path])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    with open(report_path) as file:
        report = json.load(file)
    table = report["pckh_table"]
    assert set(table) == {"PCKh@0.5", "PCKh@0.1"}
    assert table["PCKh@0.5"]["means"]["all16"] == pytest.approx(report["pckh"]["all16"]["mean"])
    assert "Ankle" in out and "Mean (mmpose)" in out and "PCKh@0.1" in out
