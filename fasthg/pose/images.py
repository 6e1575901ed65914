"""Images as the pose estimator takes them, and the crops it feeds the model.

An image is an RGB uint8 NumPy array or torch tensor (H, W, 3); grayscale (H, W) or (H, W, 1) is
spread to three channels and RGBA (H, W, 4) loses its alpha channel. Crops follow the coordinate
convention of :mod:`fasthg.data.transforms` (pixel (i, j) covers [i, i + 1) x [j, j + 1)) and are
sampled on the model's device, so a full-size frame crosses to the GPU once, as uint8.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..data.transforms import invert_matrix
from ..errors import InvalidValueError, MissingFileError
from ..extras import LazyModule

cv2 = LazyModule("cv2")

_CHANNELS = (1, 3, 4)


def rgb_tensor(image, name, device):
    """``image`` as a uint8 tensor (H, W, 3) on ``device``; TypeError or ValueError naming ``name``
    for anything but an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 array or tensor."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name}: expected a NumPy array or a torch tensor (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype not in (np.uint8, torch.uint8):
        raise TypeError(f"{name}: expected uint8 pixels (0 to 255), got dtype {image.dtype}")
    shape = tuple(image.shape)
    if len(shape) == 2:
        image, shape = image[..., None], shape + (1,)
    if len(shape) != 3 or shape[2] not in _CHANNELS:
        hint = " (a CHW tensor? images are HWC)" if len(shape) == 3 and shape[0] in _CHANNELS else ""
        raise ValueError(f"{name}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {shape}{hint}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {shape}")
    pixels = torch.as_tensor(image).to(device, non_blocking=True)
    return pixels[..., :3] if shape[2] == 4 else pixels.expand(-1, -1, 3) if shape[2] == 1 else pixels


def crop(image, matrix, size):
    """The ``size`` x ``size`` crop whose continuous coordinates are the affine ``matrix`` (2, 3)
    applied to those of ``image`` (H, W, 3) uint8: float32 RGB in [0, 1] on the image's device.

    Crop pixel (i, j) is the bilinear sample at image point M^-1 (j + 0.5, i + 0.5), black outside
    the image (``grid_sample`` with zero padding; align_corners=False puts pixel centres at +0.5).
    """
    inverse = torch.from_numpy(invert_matrix(matrix))
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack([xs, ys], dim=-1) @ inverse[:, :2].T + inverse[:, 2]
    height, width = image.shape[:2]
    grid = points / torch.tensor([width, height], dtype=torch.float64) * 2 - 1
    pixels = image.permute(2, 0, 1)[None].float().div_(255)
    sampled = F.grid_sample(pixels, grid[None].to(image.device, torch.float32), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    return sampled[0].permute(1, 2, 0)


def read_image(path):
    """The image file ``path`` as RGB uint8 (H, W, 3); grayscale and RGBA files are converted."""
    if not os.path.isfile(path):
        raise MissingFileError(f"image not found: {path}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidValueError(f"image {path} could not be decoded (not an image file OpenCV reads)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
