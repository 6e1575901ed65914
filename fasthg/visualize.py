"""Pictures a run leaves behind: loss and accuracy curves, and skeletons drawn over images."""
import math

import numpy as np

from .extras import LazyModule
from .joints import BONES

cv2 = LazyModule("cv2")
matplotlib_figure = LazyModule("matplotlib.figure")  # a Figure draws to files without pyplot's GUI backends

_SIDE_COLOURS = {"right": (255, 64, 64), "left": (64, 160, 255), "centre": (255, 220, 0)}  # RGB


def draw_skeleton(image, keypoints, confidence=None, min_confidence=0.0, thickness=None):
    """A copy of the RGB uint8 ``image`` with the bones between ``keypoints`` (16, 2) drawn on it.

    Bones of the person's right side are red, left blue, centre yellow; a bone is left out when
    either end is NaN or its ``confidence`` is below ``min_confidence``.
    """
    canvas = np.ascontiguousarray(image).copy()
    thickness = thickness or max(1, round(min(canvas.shape[:2]) / 100))
    shown = np.all(np.isfinite(keypoints), axis=-1)
    if confidence is not None:
        shown &= np.asarray(confidence) >= min_confidence
    for first, second, side in BONES:
        if shown[first] and shown[second]:
            start = tuple(int(round(v)) for v in keypoints[first])
            end = tuple(int(round(v)) for v in keypoints[second])
            cv2.line(canvas, start, end, _SIDE_COLOURS[side], thickness, cv2.LINE_AA)
    for joint in np.flatnonzero(shown):
        cv2.circle(canvas, tuple(int(round(v)) for v in keypoints[joint]), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return canvas


def skeleton_grid(images, keypoints, columns=4, tile=256):
    """A grid image of ``images`` (N, S, S, 3) uint8, each enlarged by a whole factor to about
    ``tile`` pixels, with their ``keypoints`` (N, 16, 2) in image pixels drawn on."""
    upscale = max(1, tile // images.shape[1])
    rows = math.ceil(len(images) / columns)
    size = images.shape[1] * upscale
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    for i, (image, points) in enumerate(zip(images, keypoints)):
        large = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        row, column = divmod(i, columns)
        grid[row * size:(row + 1) * size, column * size:(column + 1) * size] = draw_skeleton(large, points * upscale)
    return grid


def encode_png(image):
    """PNG bytes of an RGB uint8 image."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))  # OpenCV wants BGR
    if not ok:
        raise ValueError(f"image: could not encode an array of shape {image.shape} as PNG")
    return data.tobytes()


def plot_curves(records, file, baseline=None):
    """Plots training loss and validation PCKh per epoch from metrics records (dicts) as a PNG into ``file``."""
    epochs = [record["epoch"] for record in records]
    figure = matplotlib_figure.Figure(figsize=(10, 4))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    loss_axis.plot(epochs, [record["train_loss"] for record in records], marker="o", label="train")
    if any("val_loss" in record for record in records):
        loss_axis.plot(epochs, [record.get("val_loss", math.nan) for record in records], marker="o", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="heatmap loss", yscale="log", title="loss")
    loss_axis.legend()
    for convention in ("mpii", "all16"):
        accuracy_axis.plot(epochs, [100 * record.get(f"pckh_{convention}", math.nan) for record in records],
                           marker="o", label=f"PCKh@0.5 ({convention})")
    if baseline is not None:
        accuracy_axis.axhline(100 * baseline, color="grey", linestyle="--", label="mean-pose baseline")
    accuracy_axis.set(xlabel="epoch", ylabel="%", ylim=(0, 100), title="validation accuracy")
    accuracy_axis.legend()
    figure.tight_layout()
    figure.savefig(file, format="png", dpi=100)
