"""Crops and augmentation as 2x3 affine matrices, applied to images with OpenCV and to keypoints with NumPy.

Coordinates are continuous pixel positions: pixel (i, j) covers [i, i + 1) x [j, j + 1), so its
centre is (i + 0.5, j + 0.5). This is the convention of the heatmap ops (a joint at x lands in
heatmap pixel int(x), decoding adds 0.5), and it makes an input pixel's position exactly 4x the
position of the heatmap pixel covering it. OpenCV samples at pixel centres, so :func:`warp_image`
shifts by half a pixel on either side of the matrix.
"""
import math

import numpy as np

from ..extras import LazyModule
from ..joints import FLIP_PAIRS

cv2 = LazyModule("cv2")

CROP_UNIT = 200.0  # MPII's scale is the side of the person's box in units of 200 pixels
BOX_MARGIN = 1.25  # a person's box fills 80% of its crop's longer side, as MPII's people fill theirs


def box_crop_square(x0, y0, x1, y1):
    """(center, scale) of the square crop around the box (x0, y0, x1, y1): centred on it, of side
    ``BOX_MARGIN`` x its longer side, i.e. scale = BOX_MARGIN * max(x1 - x0, y1 - y0) / 200."""
    return ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) * BOX_MARGIN / CROP_UNIT


def crop_matrix(center, scale, size, rotation=0.0, flip=False):
    """The affine map from image coordinates to a crop of ``size`` x ``size`` pixels.

    The crop covers a square of side ``200 * scale`` around ``center`` (x, y), turned by
    ``rotation`` degrees (positive turns the crop's content counter-clockwise on screen), and
    mirrored left to right when ``flip``. Returns a (2, 3) float64 matrix.
    """
    zoom = size / (CROP_UNIT * scale)
    angle = math.radians(rotation)
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    # y points down, so a counter-clockwise turn on screen is [[cos, sin], [-sin, cos]].
    linear = np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear[0] *= -1
    offset = size / 2 - linear @ np.asarray(center, dtype=np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)


def invert_matrix(matrix):
    """The inverse of a (2, 3) affine matrix, as a (2, 3) matrix."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear, -linear @ matrix[:, 2:]], axis=1)


def transform_points(points, matrix):
    """Applies a (2, 3) affine matrix to points (..., 2)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image, matrix, size):
    """The ``size`` x ``size`` image whose continuous coordinates are ``matrix`` applied to ``image``'s.

    Bilinear interpolation; pixels from outside the source are black.
    """
    # Continuous x = pixel index + 0.5 on both sides: move to OpenCV's index frame.
    index_matrix = matrix.copy()
    index_matrix[:, 2] += matrix[:, :2].sum(axis=1) * 0.5 - 0.5
    return cv2.warpAffine(image, index_matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def flip_joint_order(per_joint, flip_pairs=FLIP_PAIRS):
    """Reorders a per-joint array (K, ...) after a left-right mirror, so joint j is again joint j
    (``flip_pairs``: the joint set's, MPII's by default)."""
    return per_joint[list(flip_pairs)]


def inside(points, size):
    """Which points (..., 2) lie in a ``size`` x ``size`` image."""
    return np.all((points >= 0) & (points < size), axis=-1)


def jitter_colour(image, rng, strength=0.2):
    """Random brightness, contrast and per-channel gain of a uint8 RGB image, as a new uint8 image."""
    pixels = image.astype(np.float32)
    gain = 1 + rng.uniform(-strength, strength, size=3)
    contrast = 1 + rng.uniform(-strength, strength)
    brightness = rng.uniform(-strength, strength) * 255
    mean = pixels.mean()
    pixels = (pixels * gain - mean) * contrast + mean + brightness
    return np.clip(pixels, 0, 255).astype(np.uint8)
