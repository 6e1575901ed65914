"""COCO's keypoint metric, OKS average precision, computed by pycocotools' own ``COCOeval`` (the
evaluation every COCO number is reported with, not a re-implementation).

The object keypoint similarity of a prediction and a ground-truth person of area s^2 is
OKS = sum_j exp(-d_j^2 / (2 s^2 k_j^2)) / n over the n labelled joints j, d_j the distance in
image pixels and k_j = 2 sigma_j (the joint set's ``oks_sigmas``). A prediction matches the
unmatched person of highest OKS >= t; AP is the precision averaged over 101 recall levels and
the thresholds t = 0.50, 0.55, ..., 0.95 (AP50, AP75: at one t; APm, APl: people of area 32^2 to
96^2 and above 96^2), AR the recall averaged the same way. pycocotools reports -1 where no person
falls in a range.
"""
import contextlib
import io

import numpy as np

from ..extras import require
from ..joint_sets import COCO_17

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def oks_average_precision(data, image_ids, keypoints, scores, joint_set=COCO_17):
    """pycocotools' keypoint statistics (a dict of :data:`STAT_NAMES`) of one prediction per
    person: ``keypoints`` (N, K, 2) x, y in image pixels on images ``image_ids`` (N,) with
    confidences ``scores`` (N,), against ``data``, a parsed COCO person-keypoints file."""
    COCO, COCOeval = require("pycocotools.coco").COCO, require("pycocotools.cocoeval").COCOeval
    category = next(c["id"] for c in data["categories"] if c.get("name") == "person")
    ones = np.ones(keypoints.shape[:2] + (1,))
    detections = [{"image_id": int(image), "category_id": category, "score": float(score),
                   "keypoints": points.ravel().tolist()}
                  for image, points, score in zip(image_ids, np.concatenate([keypoints, ones], axis=-1), scores)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports its progress on stdout
        truth = COCO()
        truth.dataset = data
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(detections), "keypoints")
        evaluation.params.kpt_oks_sigmas = np.array(joint_set.oks_sigmas)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return dict(zip(STAT_NAMES, (float(value) for value in evaluation.stats)))
