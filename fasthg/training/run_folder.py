"""A training run's folder and the artefacts in it, each written atomically by rank 0.

::

    config.json           the TrainConfig
    checkpoints/last.pt   the latest checkpoint (fasthg.training.checkpoints)
    checkpoints/best.pt   the checkpoint of the epoch with the best validation score (PCKh, mpii
                          convention; OKS AP on COCO)
    metrics.jsonl         one JSON record per epoch: losses, PCKh, learning rate, throughput
    tensorboard/          the same records as TensorBoard scalars (--tensorboard)
    curves.png            loss and validation PCKh per epoch
    predictions.png       predicted skeletons over validation images
    results.json          the final validation PCKh per joint, the mean-pose baseline, the duration
"""
import io
import json
import os

from ..files import write_atomic
from ..pose.drawing import encode_png
from . import pictures
from .checkpoints import BEST, LAST


class RunFolder:
    """The files of the run in folder ``path`` (created when missing)."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "checkpoints"), exist_ok=True)

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def checkpoint(self):
        return os.path.join(self.path, "checkpoints", LAST)

    @property
    def best_checkpoint(self):
        return os.path.join(self.path, "checkpoints", BEST)

    def write_json(self, name, value):
        write_atomic(self.file(name), (json.dumps(value, indent=2) + "\n").encode())

    def write_metrics(self, records):
        """Rewrites metrics.jsonl from the whole history (kept in the checkpoint, so a resumed run
        never repeats or loses a line)."""
        write_atomic(self.file("metrics.jsonl"), "".join(json.dumps(record) + "\n" for record in records).encode())

    def write_curves(self, records, baseline=None):
        buffer = io.BytesIO()
        pictures.plot_curves(records, buffer, baseline)
        write_atomic(self.file("curves.png"), buffer.getvalue())

    def write_predictions(self, images, keypoints):
        write_atomic(self.file("predictions.png"), encode_png(pictures.skeleton_grid(images, keypoints)))
