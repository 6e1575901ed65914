"""``--tensorboard``: each epoch's metrics record as TensorBoard scalars, in the run folder's
``tensorboard/`` beside metrics.jsonl (``tensorboard --logdir runs``)."""
import os

from ..extras import require

SCALARS = ("train_loss", "val_loss", "pckh_mpii", "pckh_all16", "lr", "images_per_second")


class TensorBoardLog:
    """Writes records to ``folder``/tensorboard. A run resumed at ``resumed_step`` first drops what an
    interrupted run logged after that step, which the resumed run logs again."""

    def __init__(self, folder, resumed_step=None):
        require("tensorboard")  # torch.utils.tensorboard's own error does not say how to install it
        summary = require("torch.utils.tensorboard")
        self.writer = summary.SummaryWriter(os.path.join(folder, "tensorboard"),
                                            purge_step=None if resumed_step is None else resumed_step + 1)

    def write(self, record):
        for name in SCALARS:
            if record.get(name) is not None:
                self.writer.add_scalar(name, record[name], record["step"])
        self.writer.flush()

    def close(self):
        self.writer.close()
