"""PCKh against hand-computed cases on the real MPII validation annotations (docs/conventions.md;
tests/mpii_annotations.py says where the tests find them)."""
import math

import h5py
import numpy as np
import pytest
import torch

from fasthg.joints import JOINT_NAMES, PELVIS, THORAX
from fasthg.metrics import pckh
from mpii_annotations import valid_h5


@pytest.fixture(scope="module")
def valid():
    """Ground truth, annotation mask and normalisers of the real valid.h5."""
    with h5py.File(valid_h5(), "r") as file:
        part, normalize = file["part"][()], file["normalize"][()]
    annotated = ~((part[..., 0] == 0) & (part[..., 1] == 0))
    return part, annotated, normalize


def _first_annotated(annotated, joint):
    return int(np.flatnonzero(annotated[:, joint])[0])


@pytest.mark.parametrize("convention", ["mpii", "all16"])
def test_ground_truth_as_prediction_scores_one(valid, convention):
    part, annotated, normalize = valid
    result = pckh(part, part, annotated, normalize, convention=convention)
    assert result["mean"] == 1.0
    assert all(value == 1.0 for value in result["per_joint"].values())
    assert [result["count"][name] for name in JOINT_NAMES] == annotated.sum(0).tolist()


@pytest.mark.parametrize("fraction, correct", [(0.49, True), (0.51, False)])
def test_one_joint_moved_by_a_fraction_of_the_normaliser(valid, fraction, correct):
    part, annotated, normalize = valid
    joint = JOINT_NAMES.index("l_wrist")
    person = _first_annotated(annotated, joint)
    pred = part.copy()
    pred[person, joint, 0] += fraction * normalize[person] * 0.6  # a diagonal move: 0.6 and 0.8 of the distance
    pred[person, joint, 1] -= fraction * normalize[person] * 0.8
    count = int(annotated[:, joint].sum())
    expected_joint = 1.0 if correct else (count - 1) / count
    mpii = pckh(pred, part, annotated, normalize, convention="mpii")
    all16 = pckh(pred, part, annotated, normalize, convention="all16")
    assert mpii["per_joint"]["l_wrist"] == pytest.approx(expected_joint, abs=1e-12)
    assert mpii["mean"] == pytest.approx((13 + expected_joint) / 14, abs=1e-12)
    total = int(annotated.sum())
    assert all16["mean"] == pytest.approx((total - (0 if correct else 1)) / total, abs=1e-12)


def test_unannotated_joints_are_skipped(valid):
    part, annotated, normalize = valid
    assert (~annotated).any()  # valid.h5 has unannotated joints (x = y = 0)
    pred = np.where(annotated[..., None], part, 1e6)  # far off wherever the ground truth is missing
    for convention in ("mpii", "all16"):
        assert pckh(pred, part, annotated, normalize, convention=convention)["mean"] == 1.0


def test_conventions_differ_on_pelvis_and_thorax(valid):
    """mpii leaves pelvis and thorax out of its unweighted mean; all16 counts every joint."""
    part, annotated, normalize = valid
    pred = part.copy()
    pred[:, [PELVIS, THORAX]] += 1e3
    mpii = pckh(pred, part, annotated, normalize, convention="mpii")
    all16 = pckh(pred, part, annotated, normalize, convention="all16")
    assert mpii["mean"] == 1.0
    assert mpii["per_joint"]["pelvis"] == mpii["per_joint"]["thorax"] == 0.0
    missed = annotated[:, [PELVIS, THORAX]].sum()
    assert all16["mean"] == pytest.approx(1 - missed / annotated.sum(), abs=1e-12)


def test_hand_computed_weighting():
    """Two people: per-joint means are unweighted in mpii and count-weighted in all16."""
    gt = np.zeros((2, 16, 2)) + 10.0
    annotated = np.ones((2, 16), dtype=bool)
    annotated[1, 0] = False  # r_ankle annotated once
    pred = gt.copy()
    pred[0, 0] += [3.0, 4.0]  # distance 5, normaliser 10: 0.5 is not strictly below 0.5
    pred[1, 1] += [0.0, 4.9]  # 0.49: correct
    pred[0, 1] += [0.0, 5.1]  # 0.51: wrong
    result = pckh(torch.tensor(pred), gt, annotated, [10.0, 10.0], convention="mpii")
    assert result["per_joint"]["r_ankle"] == 0.0 and result["count"]["r_ankle"] == 1
    assert result["per_joint"]["r_knee"] == 0.5
    assert result["mean"] == pytest.approx((0.0 + 0.5 + 12) / 14)
    all16 = pckh(pred, gt, annotated, [10.0, 10.0], convention="all16")
    assert all16["mean"] == pytest.approx(29 / 31)


def test_threshold_and_nan_predictions():
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, :, 0] = 0.7  # 0.7 of the normaliser 1
    pred[0, 3] = math.nan
    annotated = np.ones((1, 16), dtype=bool)
    assert pckh(pred, gt, annotated, [1.0], threshold=1.0, convention="all16")["mean"] == pytest.approx(15 / 16)
    assert pckh(pred, gt, annotated, [1.0], threshold=0.5, convention="all16")["mean"] == 0.0


def test_a_joint_never_annotated_is_nan_and_left_out_of_the_mean():
    gt = np.ones((3, 16, 2))
    annotated = np.ones((3, 16), dtype=bool)
    annotated[:, 0] = False
    result = pckh(gt, gt, annotated, np.ones(3))
    assert math.isnan(result["per_joint"]["r_ankle"])
    assert result["mean"] == 1.0


@pytest.mark.parametrize("change, message", [
    (dict(pred=np.zeros((2, 16, 3))), "pred: expected the shape of gt"),
    (dict(gt=np.zeros((2, 14, 2)), pred=np.zeros((2, 14, 2))), "gt: expected shape (N, 16, 2)"),
    (dict(annotated=np.ones((2, 15), dtype=bool)), "annotated: expected shape (2, 16)"),
    (dict(normalize=np.ones(3)), "normalize: expected shape (2,)"),
    (dict(normalize=np.array([1.0, 0.0])), "normalize: expected finite head sizes > 0"),
    (dict(threshold=-0.5), "threshold: expected a finite number > 0"),
    (dict(convention="pck"), "convention: expected one of 'mpii', 'all16'"),
    (dict(pred="abc"), "pred: expected"),
])
def test_bad_arguments_name_the_argument(change, message):
    arguments = dict(pred=np.zeros((2, 16, 2)), gt=np.zeros((2, 16, 2)), annotated=np.ones((2, 16), dtype=bool),
                     normalize=np.ones(2), threshold=0.5, convention="mpii")
    arguments.update(change)
    with pytest.raises((ValueError, TypeError)) as error:
        pckh(**arguments)
    assert message in str(error.value)
