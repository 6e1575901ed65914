"""Joint sets (fasthg.joint_sets): MPII-16 and COCO-17 as values that metrics, flip tests, drawing
and the commands take, and a checkpoint whose output channels do not fit the dataset's set."""
import numpy as np
import pytest
import torch

from fasthg import cli, evaluate, train
from fasthg.data.transforms import flip_joint_order
from fasthg.joint_sets import COCO_17, MPII_16, JointSet, joint_set_for_channels
from fasthg.metrics import pckh
from fasthg.pose.drawing import draw_skeleton
from pose_checkpoints import fasthg_checkpoint, tiny_posenet


def _mirror_name(name):
    for first, second in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(first):
            return second + name[len(first):]
    return name


def test_coco_flip_pairs_swap_left_and_right_by_name():
    expected = [COCO_17.names.index(_mirror_name(name)) for name in COCO_17.names]
    assert list(COCO_17.flip_pairs) == expected


def test_coco_sigmas_are_the_published_ones_by_name():
    published = {"nose": .026, "eye": .025, "ear": .035, "shoulder": .079, "elbow": .072, "wrist": .062,
                 "hip": .107, "knee": .087, "ankle": .089}
    for name, sigma in zip(COCO_17.names, COCO_17.oks_sigmas):
        assert sigma == published[name.split("_")[-1]], name


def test_bones_of_each_side_join_joints_of_that_side():
    for joint_set, left, right in ((COCO_17, "left_", "right_"), (MPII_16, "l_", "r_")):
        for first, second, side in joint_set.bones:
            names = (joint_set.names[first], joint_set.names[second])
            if side == "left":
                assert any(name.startswith(left) for name in names) and not any(n.startswith(right) for n in names)
            if side == "right":
                assert any(name.startswith(right) for name in names) and not any(n.startswith(left) for n in names)


def test_channel_counts_pick_the_built_in_sets():
    assert joint_set_for_channels(16) is MPII_16 and joint_set_for_channels(17) is COCO_17
    assert joint_set_for_channels(5) is None


@pytest.mark.parametrize("field, value, words", [
    ("flip_pairs", (1, 2, 0), "its own inverse"),
    ("bones", ((0, 3, "left"),), "joints < 3"),
    ("bones", ((0, 1, "up"),), "side in"),
    ("oks_sigmas", (0.1, 0.1), "3 sigmas"),
])
def test_a_malformed_joint_set_is_refused_naming_the_field(field, value, words):
    fields = {"name": "three", "names": ("a", "b", "c"), "flip_pairs": (0, 1, 2), "bones": (), field: value}
    with pytest.raises(ValueError, match=f"^{field}: .*{words}"):
        JointSet(**fields)


def test_flip_joint_order_follows_the_given_pairs():
    per_joint = np.arange(17)
    mirrored = flip_joint_order(per_joint, COCO_17.flip_pairs)
    assert mirrored[COCO_17.names.index("left_wrist")] == COCO_17.names.index("right_wrist")
    assert mirrored[0] == 0


def test_pckh_scores_a_coco_joint_set_and_counts_every_joint():
    gt = np.zeros((2, 17, 2))
    pred = gt.copy()
    pred[0, 3] = [0.6, 0.0]  # error 0.6 of a head size of 1: missed at 0.5
    result = pckh(pred, gt, np.ones((2, 17)), np.ones(2), joint_set=COCO_17)
    assert result["per_joint"]["left_ear"] == 0.5 and result["per_joint"]["nose"] == 1.0
    # No joint is excluded from COCO's means: 33 of 34 joints, and the mean of per-joint values.
    assert result["mean"] == pytest.approx(16.5 / 17)
    assert pckh(pred, gt, np.ones((2, 17)), np.ones(2), convention="all16", joint_set=COCO_17)["mean"] == 33 / 34


def test_pckh_refuses_the_wrong_number_of_joints_for_its_set():
    with pytest.raises(ValueError, match=r"^gt: expected shape \(N, 17, 2\) in COCO joint order"):
        pckh(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.ones((1, 16)), np.ones(1), joint_set=COCO_17)
    with pytest.raises(TypeError, match="^joint_set: expected a fasthg.joint_sets.JointSet, got str"):
        pckh(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.ones((1, 16)), np.ones(1), joint_set="coco")


def test_draw_skeleton_draws_the_bones_of_the_keypoints_joint_set():
    keypoints = np.full((17, 2), np.nan)
    left_elbow, left_wrist = COCO_17.names.index("left_elbow"), COCO_17.names.index("left_wrist")
    keypoints[left_elbow], keypoints[left_wrist] = (10, 30), (50, 30)
    canvas = draw_skeleton(np.zeros((60, 60, 3), np.uint8), keypoints, thickness=1)
    red, green, blue = canvas[30, 30].astype(int)  # the middle of the bone: the left side's blue, antialiased
    assert blue > 200 and red < green < blue
    # The same points as MPII's joints 9 and 10 (head top, right wrist) share no bone: nothing between.
    mpii = np.full((16, 2), np.nan)
    mpii[9], mpii[10] = (10, 30), (50, 30)
    assert not draw_skeleton(np.zeros((60, 60, 3), np.uint8), mpii, thickness=1)[30, 30].any()


def run_command(module, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.run(module.main, argv)
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("module, extra", [(evaluate, []), (train, ["--epochs", "1", "--max-steps", "1"])],
                         ids=["evaluate", "train"])
def test_a_checkpoint_of_another_joint_count_is_one_line_and_status_2(module, extra, tmp_path, capsys):
    path = str(tmp_path / "coco.pt")
    torch.save(fasthg_checkpoint(tiny_posenet(joints=17).state_dict()), path)
    output = str(tmp_path / "run")
    status, err = run_command(module, ["--checkpoint", path, "--dataset", "synthetic", *extra] +
                              (["--output", output] if module is train else []), capsys)
    assert status == 2
    assert err.count("\n") == 1 and "predicts 17 joints, the mpii joint set has 16" in err
    assert not (tmp_path / "run").exists()  # nothing written
