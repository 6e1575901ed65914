"""``fasthg.PoseEstimator``: the keypoints of one person per image, in memory, from any PoseNet.

::

    estimator = fasthg.PoseEstimator("checkpoint.pt")  # princeton's, a fasthg run, a state_dict or a model
    pose = estimator(image, box=(x0, y0, x1, y1))      # image: RGB uint8 (H, W, 3), NumPy or torch
    pose.keypoints, pose.confidence                    # (K, 2) x, y in image pixels; (K,) heatmap peaks
    poses = estimator.batch(images, boxes)             # one forward pass for all of them

The person is cropped as in training: a square of 200·scale pixels around a centre, from the box
(its centre, side 1.25 x its longer side, as MPII's people fill about 80% of their crop) or the
whole image, resampled to the model's input size on the model's device. Keypoints are continuous
image coordinates: pixel (i, j) covers [i, i + 1) x [j, j + 1), so the top-left pixel's centre is
(0.5, 0.5). On CUDA, fasthg's own PoseNet runs its fused Triton kernels.
"""
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.transforms import CROP_UNIT, box_crop_square, crop_matrix, invert_matrix
from ..distributed import use_device
from ..errors import InvalidValueError
from ..joint_sets import joint_set_for_channels
from ..precision import AMP_MODES, autocast_dtype
from .images import crop, rgb_tensor
from .inference import flip_tested, run_model, to_original
from .state_dicts import posenet_architecture
from .targets import DECODING, HeatmapTargets
from .weights import load_pose_model, princeton_info, warn_if_synthetic

Image = np.ndarray | torch.Tensor  # RGB uint8 (H, W, 3); grayscale and RGBA accepted
Box = Sequence[float]  # x0, y0, x1, y1 in image pixels


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's keypoints (K, 2) x, y in image pixels, their ``confidence`` (K,) (the peak of
    each joint's heatmap, about 1 where the model is sure, near 0 where it sees nothing), and the
    crop they were found in: a square of 200·``scale`` pixels around ``center`` (x, y)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    center: tuple
    scale: float
    joint_names: tuple

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: center, scale and, per joint, its name, x, y and confidence."""
        return {"center": [float(c) for c in self.center], "scale": float(self.scale),
                "keypoints": [{"joint": name, "x": float(x), "y": float(y), "confidence": float(c)}
                              for name, (x, y), c in zip(self.joint_names, self.keypoints, self.confidence)]}


def box_crop(box, width, height, name="box"):
    """(center, scale) of the crop around ``box`` (x0, y0, x1, y1), or of the whole image for None.

    Raises InvalidValueError (a ValueError) for a box that is not four finite numbers with x0 < x1 and y0 < y1, or that
    lies wholly outside the ``width`` x ``height`` image.
    """
    if box is None:
        return (width / 2, height / 2), max(width, height) / CROP_UNIT
    try:
        x0, y0, x1, y1 = (float(value) for value in box)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{name}: expected four numbers (x0, y0, x1, y1) or None, got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise InvalidValueError(f"{name}: expected finite x0 < x1 and y0 < y1, got {(x0, y0, x1, y1)}")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise InvalidValueError(f"{name}: {(x0, y0, x1, y1)} lies outside the {width}x{height} image")
    return box_crop_square(x0, y0, x1, y1)


class PoseEstimator:
    """Keypoints of one person per image from ``checkpoint_or_model``: a path (fasthg run folder or
    checkpoint, princeton-vl's checkpoint.pt, a state_dict file), a state_dict or checkpoint dict,
    or a PoseNet module (fasthg's or the reference's, put in eval mode; ``device="auto"`` keeps it
    where it is).

    ``device``: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N". ``flip_test`` averages each
    image's heatmaps with its mirror image's. ``amp``: "off" (fp32), "bf16", "fp16" (CUDA) or
    "auto". ``input_size`` and ``heatmap_style`` override what the checkpoint says (weights without
    a fasthg config are taken to be princeton's: 256-pixel crops, princeton heatmaps).
    ``flip_pairs`` maps each joint to its mirror joint: the built-in joint set's (fasthg.joint_sets)
    for 16 (MPII) or 17 (COCO) joints, needed for flip tests of any other number. Weights trained on
    fasthg's synthetic figures warn that they are (:class:`fasthg.pose.weights.SyntheticWeightsWarning`).
    """

    def __init__(self, checkpoint_or_model: str | os.PathLike | Mapping[str, Any] | torch.nn.Module,
                 device: str | torch.device = "auto", flip_test: bool = False, amp: str = "off",
                 input_size: int | None = None, heatmap_style: str | None = None,
                 flip_pairs: Sequence[int] | None = None) -> None:
        if amp not in AMP_MODES:
            raise InvalidValueError(f"amp: expected one of {', '.join(AMP_MODES)}, got {amp!r}")
        if isinstance(checkpoint_or_model, torch.nn.Module):
            model = checkpoint_or_model
            if device != "auto":
                model.to(use_device(str(device)))
            self.device = next(model.parameters()).device
            try:
                architecture = posenet_architecture(model.state_dict())
            except ValueError as error:
                raise InvalidValueError(f"checkpoint_or_model: a {type(model).__name__} is not a PoseNet ({error})") from None
            self.model = model.eval()
            self.info = princeton_info(architecture, type(model).__name__)
        else:
            self.device = use_device(str(device))
            self.model, self.info = load_pose_model(checkpoint_or_model, self.device)
        warn_if_synthetic(self.info)
        self.input_size = self.info.input_size if input_size is None else input_size
        if not isinstance(self.input_size, int) or self.input_size < 64 or self.input_size % 64:
            raise InvalidValueError(f"input_size: expected a multiple of 64 (the network halves it 6 times), got {input_size!r}")
        joints = self.info.architecture.oup_dim
        joint_set = joint_set_for_channels(joints)
        self.joint_names = joint_set.names if joint_set else tuple(f"joint_{j}" for j in range(joints))
        self.flip_pairs = flip_pairs if flip_pairs is not None else joint_set.flip_pairs if joint_set else None
        if flip_test and self.flip_pairs is None:
            raise InvalidValueError(f"flip_pairs: a flip test of {joints} joints needs each joint's mirror joint")
        self.flip_test = bool(flip_test)
        self.amp_dtype = autocast_dtype(amp, self.device)
        if heatmap_style is not None and heatmap_style not in DECODING:
            raise InvalidValueError(f"heatmap_style: expected one of {', '.join(DECODING)}, got {heatmap_style!r}")
        self.targets = HeatmapTargets(heatmap_style or self.info.heatmap_style, self.info.sigma)

    def __call__(self, image: Image, box: Box | None = None) -> Pose:
        """The :class:`Pose` of the person in ``box`` (x0, y0, x1, y1) of ``image``, or in the whole image."""
        return self.batch([image], [box])[0]

    def batch(self, images: Iterable[Image], boxes: Iterable[Box | None] | None = None) -> list[Pose]:
        """The :class:`Pose` of each image (a list), in ``boxes`` (a list of boxes or None) or whole."""
        images = list(images)
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise InvalidValueError(f"boxes: expected one box (or None) per image, {len(images)}, got {len(boxes)}")
        pixels = [rgb_tensor(image, f"images[{i}]", self.device) for i, image in enumerate(images)]
        crops = [box_crop(box, p.shape[1], p.shape[0], f"boxes[{i}]") for i, (box, p) in enumerate(zip(boxes, pixels))]
        return self._estimate(pixels, [c for c, _ in crops], [s for _, s in crops])

    def at(self, images: Iterable[Image], centers: Iterable[Sequence[float]], scales: Iterable[float]) -> list[Pose]:
        """The :class:`Pose` of each image's person in a square of 200·scale pixels around its
        center (x, y): MPII's annotation convention."""
        images, centers, scales = list(images), list(centers), list(scales)
        if not len(images) == len(centers) == len(scales):
            raise InvalidValueError(f"centers, scales: expected one per image, {len(images)}, got {len(centers)} and {len(scales)}")
        pixels = [rgb_tensor(image, f"images[{i}]", self.device) for i, image in enumerate(images)]
        for i, scale in enumerate(scales):
            if not (isinstance(scale, numbers.Real) and 0 < scale < math.inf):
                raise InvalidValueError(f"scales[{i}]: expected a finite number > 0, got {scale!r}")
        return self._estimate(pixels, [tuple(map(float, c)) for c in centers], [float(s) for s in scales])

    @torch.no_grad()
    def _estimate(self, pixels, centers, scales):
        if not pixels:
            return []
        matrices = [crop_matrix(c, s, self.input_size) for c, s in zip(centers, scales)]
        inputs = torch.stack([crop(p, m, self.input_size) for p, m in zip(pixels, matrices)])
        heatmaps = run_model(self.model, inputs, self.amp_dtype)[:, -1]
        if self.flip_test:
            heatmaps = flip_tested(self.model, inputs, heatmaps, self.amp_dtype, self.flip_pairs)
        coordinates, peaks = self.targets.decode(heatmaps)
        back = torch.from_numpy(np.stack([invert_matrix(m) for m in matrices]))
        keypoints = to_original(coordinates.double().cpu(), back).numpy()
        peaks = peaks.float().cpu().numpy()
        return [Pose(k, p, c, s, self.joint_names) for k, p, c, s in zip(keypoints, peaks, centers, scales)]
