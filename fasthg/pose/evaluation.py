"""Validation: predictions over a dataset (sharded across processes), PCKh in both conventions,
and the mean-pose baseline that a model must beat."""
import numpy as np
import torch

from .. import distributed
from ..joint_sets import MPII_16
from ..metrics import CONVENTIONS, pckh
from .inference import flip_tested, model_input, run_model, to_original

_BASELINE_SAMPLES = 4096  # training crops averaged into the mean pose


@torch.no_grad()
def predict_dataset(model, loader, context, targets, amp_dtype=None, flip=False, joint_set=MPII_16):
    """Predictions for every item of the loaders of all processes, gathered on rank 0 (None elsewhere).

    Returns a dict of NumPy arrays ordered by item index: ``predicted`` (N, K, 2) and ``peaks``
    (N, K) in the original frame (K joints of ``joint_set``, whose flip pairs the flip test uses), the items' ``original_keypoints``, ``annotated``,
    ``normalize`` and ``to_original``, and the mean ``loss`` of every stack's heatmaps.
    """
    was_training = model.training
    model.eval()
    parts, loss_sum, count = [], 0.0, 0
    for batch in loader:
        inputs = model_input(batch["image"], context.device)
        stacks = run_model(model, inputs, amp_dtype)
        size = len(inputs)
        loss = targets.loss(stacks, batch["keypoints"].to(context.device), batch["visible"].to(context.device))
        loss_sum, count = loss_sum + float(loss) * size, count + size
        heatmaps = stacks[:, -1]
        if flip:
            heatmaps = flip_tested(model, inputs, heatmaps, amp_dtype, joint_set.flip_pairs)
        coordinates, peaks = targets.decode(heatmaps)
        parts.append({
            "index": batch["index"].numpy(),
            "predicted": to_original(coordinates.double().cpu(), batch["to_original"].double()).numpy(),
            "peaks": peaks.float().cpu().numpy(),
            **{key: batch[key].numpy() for key in ("original_keypoints", "annotated", "normalize", "to_original")},
        })
    model.train(was_training)
    gathered = distributed.gather_to_main(context, (parts, loss_sum, count))
    if gathered is None:
        return None
    parts = [part for rank_parts, _, _ in gathered for part in rank_parts]
    results = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    order = np.argsort(results["index"], kind="stable")
    results = {key: value[order] for key, value in results.items()}
    results["loss"] = sum(loss for _, loss, _ in gathered) / sum(n for _, _, n in gathered)
    return results


def score(results, predicted=None, joint_set=MPII_16):
    """PCKh@0.5 in every convention ({"mpii": ..., "all16": ..., "mmpose": ...}) of ``predicted``
    (default: the model's)."""
    predicted = results["predicted"] if predicted is None else predicted
    return {convention: pckh(predicted, results["original_keypoints"], results["annotated"], results["normalize"],
                             convention=convention, joint_set=joint_set) for convention in CONVENTIONS}


def mean_pose(dataset, limit=_BASELINE_SAMPLES):
    """The average crop keypoints (K, 2) of the first ``limit`` items of a training set, each joint
    over the items where it is annotated and inside the crop."""
    total, counts = np.zeros((len(dataset.joint_set), 2)), np.zeros(len(dataset.joint_set))
    for index in range(min(limit, len(dataset))):
        keypoints, known = dataset.keypoints(index)
        total += np.where(known[:, None], keypoints, 0)
        counts += known
    return total / np.maximum(counts, 1)[:, None]


def baseline_score(results, pose, scoring):
    """The scores (by ``scoring``, fasthg.pose.scoring) of predicting the crop keypoints ``pose`` (K, 2)
    for every item of ``results``."""
    crops = torch.from_numpy(np.broadcast_to(pose, (len(results["index"]),) + pose.shape).copy())
    guesses = to_original(crops, torch.from_numpy(results["to_original"]).double()).numpy()
    return scoring.score(results, guesses)


def format_table(scores, baseline=None):
    """Per-joint PCKh and both means as a text table, next to the baseline's when given."""
    header = f"{'joint':<12}{'PCKh@0.5':>10}" + (f"{'mean pose':>11}" if baseline else "")
    lines = [header, "-" * len(header)]

    def row(name, value, base):
        return f"{name:<12}{100 * value:>10.1f}" + (f"{100 * base:>11.1f}" if baseline else "")

    for name in scores["mpii"]["per_joint"]:
        lines.append(row(name, scores["mpii"]["per_joint"][name], baseline and baseline["mpii"]["per_joint"][name]))
    lines.append("-" * len(header))
    lines.append(row("mean (mpii)", scores["mpii"]["mean"], baseline and baseline["mpii"]["mean"]))
    lines.append(row("total all16", scores["all16"]["mean"], baseline and baseline["all16"]["mean"]))
    return "\n".join(lines)
