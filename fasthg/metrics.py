"""PCKh: the fraction of joints predicted within a fraction of the head size (docs/conventions.md)."""
import math

import numpy as np
import torch

from .joint_sets import MPII_16, JointSet

CONVENTIONS = ("mpii", "all16", "mmpose")


def _as_array(name, value, shape_text, ndim):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array or tensor {shape_text}, got {type(value).__name__}") from None
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected shape {shape_text}, got {array.shape}")
    return array


def _check_arguments(pred, gt, annotated, normalize, threshold, convention, joint_set):
    if not isinstance(joint_set, JointSet):
        raise TypeError(f"joint_set: expected a fasthg.joint_sets.JointSet, got {type(joint_set).__name__}")
    count = len(joint_set)
    pred = _as_array("pred", pred, f"(N, {count}, 2)", 3)
    gt = _as_array("gt", gt, f"(N, {count}, 2)", 3)
    annotated = _as_array("annotated", annotated, f"(N, {count})", 2)
    normalize = _as_array("normalize", normalize, "(N,)", 1)
    if gt.shape[1:] != (count, 2):
        raise ValueError(f"gt: expected shape (N, {count}, 2) in {joint_set.name.upper()} joint order, got {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred: expected the shape of gt {gt.shape}, got {pred.shape}")
    if annotated.shape != gt.shape[:2]:
        raise ValueError(f"annotated: expected shape {gt.shape[:2]}, got {annotated.shape}")
    if normalize.shape != gt.shape[:1]:
        raise ValueError(f"normalize: expected shape ({gt.shape[0]},), got {normalize.shape}")
    if not np.all(np.isfinite(normalize) & (normalize > 0)):
        raise ValueError("normalize: expected finite head sizes > 0, got "
                         f"{normalize[~(np.isfinite(normalize) & (normalize > 0))][:5].tolist()}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold: expected a number, got {type(threshold).__name__}")
    if not 0 < threshold < math.inf:
        raise ValueError(f"threshold: expected a finite number > 0, got {threshold!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {', '.join(map(repr, CONVENTIONS))}, got {convention!r}")
    return pred, gt, annotated.astype(bool), normalize


def pckh(pred, gt, annotated, normalize, threshold=0.5, convention="mpii", joint_set=MPII_16):
    """PCKh@threshold of predictions ``pred`` against ground truth ``gt``.

    pred, gt: (N, K, 2) x, y in one coordinate frame, in the order of ``joint_set`` (a
    :class:`~fasthg.joint_sets.JointSet`, MPII's 16 by default); annotated: (N, K),
    joints that are False are skipped; normalize: (N,) head sizes in that frame (0.6 x the head
    box diagonal, the ``normalize`` field of valid.h5). A joint is correct when its distance to
    the ground truth divided by ``normalize`` is strictly below ``threshold``; a NaN prediction
    is never correct.

    With n_j the annotated and h_j the correct joints j over the N people, PCKh_j = h_j / n_j and
    E the joint set's ``pckh_excluded`` (MPII: pelvis and thorax), ``mean`` is:
    ``convention="mpii"``: mean over j not in E of PCKh_j (unweighted, MPII's leaderboard);
    ``"all16"``: sum_j h_j / sum_j n_j over all joints (count-weighted, princeton's "total");
    ``"mmpose"``: sum over j not in E of h_j / sum over j not in E of n_j (count-weighted without
    E, MMPose's "PCKh"). Joints that no person has annotated are left out of every mean.
    Returns ``{"per_joint": {name: PCKh or NaN when no joint was annotated}, "count": {name:
    annotated joints}, "mean": float, "convention": str, "threshold": float}``.
    """
    pred, gt, annotated, normalize = _check_arguments(pred, gt, annotated, normalize, threshold, convention, joint_set)
    error = np.linalg.norm(pred - gt, axis=-1) / normalize[:, None]
    correct = (error < threshold) & annotated
    counts = annotated.sum(0)
    hits = correct.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = hits / counts
    kept = [j for j in range(len(joint_set)) if counts[j] > 0 and (convention == "all16" or j not in joint_set.pckh_excluded)]
    if not kept:
        mean = math.nan
    elif convention == "mpii":
        mean = float(np.mean(per_joint[kept]))
    else:
        mean = float(hits[kept].sum() / counts[kept].sum())
    return {
        "per_joint": {name: float(value) for name, value in zip(joint_set.names, per_joint)},
        "count": {name: int(value) for name, value in zip(joint_set.names, counts)},
        "mean": mean,
        "convention": convention,
        "threshold": float(threshold),
    }
