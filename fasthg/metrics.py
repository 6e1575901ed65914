"""PCKh: the fraction of joints predicted within a fraction of the head size (docs/conventions.md)."""
import math

import numpy as np
import torch

from .joints import JOINT_NAMES, NUM_JOINTS, PELVIS, THORAX

CONVENTIONS = ("mpii", "all16")
# The MPII benchmark's headline number leaves out the two joints that are easiest to localise.
_EXCLUDED_FROM_MPII_MEAN = (PELVIS, THORAX)


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


def _check_arguments(pred, gt, annotated, normalize, threshold, convention):
    pred = _as_array("pred", pred, "(N, 16, 2)", 3)
    gt = _as_array("gt", gt, "(N, 16, 2)", 3)
    annotated = _as_array("annotated", annotated, "(N, 16)", 2)
    normalize = _as_array("normalize", normalize, "(N,)", 1)
    if gt.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"gt: expected shape (N, {NUM_JOINTS}, 2) in MPII joint order, got {gt.shape}")
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


def pckh(pred, gt, annotated, normalize, threshold=0.5, convention="mpii"):
    """PCKh@threshold of predictions ``pred`` against ground truth ``gt``.

    pred, gt: (N, 16, 2) x, y in one coordinate frame (MPII joint order); annotated: (N, 16),
    joints that are False are skipped; normalize: (N,) head sizes in that frame (0.6 x the head
    box diagonal, the ``normalize`` field of valid.h5). A joint is correct when its distance to
    the ground truth divided by ``normalize`` is strictly below ``threshold``; a NaN prediction
    is never correct.

    ``convention="mpii"``: ``mean`` is the unweighted mean of the per-joint PCKh over the 14
    joints other than pelvis and thorax. ``"all16"``: the count-weighted total over all 16.
    Returns ``{"per_joint": {name: PCKh or NaN when no joint was annotated}, "count": {name:
    annotated joints}, "mean": float, "convention": str, "threshold": float}``.
    """
    pred, gt, annotated, normalize = _check_arguments(pred, gt, annotated, normalize, threshold, convention)
    error = np.linalg.norm(pred - gt, axis=-1) / normalize[:, None]
    correct = (error < threshold) & annotated
    counts = annotated.sum(0)
    hits = correct.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = hits / counts
    if convention == "mpii":
        kept = [j for j in range(NUM_JOINTS) if j not in _EXCLUDED_FROM_MPII_MEAN and counts[j] > 0]
        mean = float(np.mean(per_joint[kept])) if kept else math.nan
    else:
        mean = float(hits.sum() / counts.sum()) if counts.sum() else math.nan
    return {
        "per_joint": {name: float(value) for name, value in zip(JOINT_NAMES, per_joint)},
        "count": {name: int(value) for name, value in zip(JOINT_NAMES, counts)},
        "mean": mean,
        "convention": convention,
        "threshold": float(threshold),
    }
