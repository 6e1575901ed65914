"""Pictures a run leaves behind: loss and accuracy curves, and skeletons drawn over a grid of images."""
import math

import numpy as np

from ..extras import LazyModule
from ..pose.drawing import draw_skeleton
from ..pose.scoring import LABELS

cv2 = LazyModule("cv2")
matplotlib_figure = LazyModule("matplotlib.figure")  # a Figure draws to files without pyplot's GUI backends


def skeleton_grid(images, keypoints, columns=4, tile=256):
    """A grid image of ``images`` (N, S, S, 3) uint8, each enlarged by a whole factor to about
    ``tile`` pixels, with their ``keypoints`` (N, K, 2) in image pixels drawn on."""
    upscale = max(1, tile // images.shape[1])
    rows = math.ceil(len(images) / columns)
    size = images.shape[1] * upscale
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    for i, (image, points) in enumerate(zip(images, keypoints)):
        large = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        row, column = divmod(i, columns)
        grid[row * size:(row + 1) * size, column * size:(column + 1) * size] = draw_skeleton(large, points * upscale)
    return grid


def plot_curves(records, file, baseline=None):
    """Plots training loss and the validation headline numbers (fasthg.pose.scoring.LABELS: PCKh or OKS AP)
    per epoch from metrics records (dicts) as a PNG into ``file``."""
    epochs = [record["epoch"] for record in records]
    figure = matplotlib_figure.Figure(figsize=(10, 4))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    loss_axis.plot(epochs, [record["train_loss"] for record in records], marker="o", label="train")
    if any("val_loss" in record for record in records):
        loss_axis.plot(epochs, [record.get("val_loss", math.nan) for record in records], marker="o", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="heatmap loss", yscale="log", title="loss")
    loss_axis.legend()
    for name, label in LABELS.items():
        if any(name in record for record in records):
            accuracy_axis.plot(epochs, [100 * record.get(name, math.nan) for record in records], marker="o", label=label)
    if baseline is not None:
        accuracy_axis.axhline(100 * baseline, color="grey", linestyle="--", label="mean-pose baseline")
    accuracy_axis.set(xlabel="epoch", ylabel="%", ylim=(0, 100), title="validation accuracy")
    accuracy_axis.legend()
    figure.tight_layout()
    figure.savefig(file, format="png", dpi=100)
