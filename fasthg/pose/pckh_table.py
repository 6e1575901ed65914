"""The MPII table papers print: PCKh per body part at thresholds 0.5 and 0.1, and the means of
every convention fasthg knows, so a fasthg number can be set beside any paper's or peer's.

A body part's PCKh is the unweighted mean of its joints' PCKh (left and right; the head is upper
neck and head top, as MPII's own evaluation groups them; MMPose's "Head" is the head top alone,
which the per-joint results give). The means (:func:`fasthg.metrics.pckh`, docs/conventions.md):
``mpii``, the unweighted mean over the 14 joints without pelvis and thorax; ``all16``, correct
over annotated joints counted over all 16 (princeton-vl's "total"); ``mmpose``, correct over
annotated joints counted over those 14 (MMPose's "PCKh").
"""
import math

from ..metrics import CONVENTIONS, pckh

THRESHOLDS = (0.5, 0.1)
BODY_PARTS = (
    ("Head", ("upper_neck", "head_top")), ("Shoulder", ("r_shoulder", "l_shoulder")),
    ("Elbow", ("r_elbow", "l_elbow")), ("Wrist", ("r_wrist", "l_wrist")), ("Hip", ("r_hip", "l_hip")),
    ("Knee", ("r_knee", "l_knee")), ("Ankle", ("r_ankle", "l_ankle")),
)
MEAN_LABELS = {"mpii": "Mean (mpii)", "all16": "Total (all16)", "mmpose": "Mean (mmpose)"}


def _mean(values):
    """The mean of the values that are not NaN (NaN when none is)."""
    known = [value for value in values if not math.isnan(value)]
    return sum(known) / len(known) if known else math.nan


def body_part_table(pred, gt, annotated, normalize):
    """PCKh per body part and per convention at each of :data:`THRESHOLDS`, for the arguments of
    :func:`fasthg.metrics.pckh` (MPII's 16 joints).

    Returns ``{"PCKh@0.5": {"parts": {part: PCKh}, "means": {convention: PCKh}, "per_joint":
    {joint: PCKh}}, "PCKh@0.1": ...}``, fractions in [0, 1] (NaN where nothing was annotated).
    """
    table = {}
    for threshold in THRESHOLDS:
        scores = {convention: pckh(pred, gt, annotated, normalize, threshold, convention) for convention in CONVENTIONS}
        per_joint = scores["mpii"]["per_joint"]
        table[f"PCKh@{threshold:g}"] = {
            "parts": {part: _mean([per_joint[joint] for joint in joints]) for part, joints in BODY_PARTS},
            "means": {convention: scores[convention]["mean"] for convention in CONVENTIONS},
            "per_joint": per_joint,
        }
    return table


def format_body_part_table(table):
    """``table`` (:func:`body_part_table`) as text: a row per body part and per mean, a column per
    threshold, in percent."""
    columns = list(table)
    header = f"{'body part':<15}" + "".join(f"{column:>10}" for column in columns)
    lines = [header, "-" * len(header)]
    for part, _ in BODY_PARTS:
        lines.append(f"{part:<15}" + "".join(f"{100 * table[column]['parts'][part]:>10.1f}" for column in columns))
    lines.append("-" * len(header))
    for convention in CONVENTIONS:
        lines.append(f"{MEAN_LABELS[convention]:<15}" +
                     "".join(f"{100 * table[column]['means'][convention]:>10.1f}" for column in columns))
    return "\n".join(lines)
