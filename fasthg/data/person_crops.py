"""People cropped out of photos: the dataset behind MPII and COCO, which differ only in where
their annotations come from.

Each person is cropped as a square of side 200·scale around its centre (docs/conventions.md) by
one OpenCV affine warp that also applies the training augmentation: scale x [0.75, 1.25],
rotation in [-30, 30] degrees, a left-right mirror with the joint set's flip pairs, and colour
jitter. Augmentation is drawn from (seed, split, epoch, index), so a resumed or distributed run
sees exactly the crops an uninterrupted one would.
"""
import os

import numpy as np
import torch

from ..errors import MissingFileError, UserError
from ..extras import LazyModule
from .sample import make_sample
from .transforms import crop_matrix, flip_joint_order, inside, invert_matrix, jitter_colour, transform_points, warp_image

cv2 = LazyModule("cv2")


class PersonCrops(torch.utils.data.Dataset):
    """The people of ``annotations`` as :func:`~fasthg.data.sample.make_sample` items: per person
    ``center`` (N, 2), ``scale`` (N,), ``part`` (N, K, 2) in the joint order of the class's
    ``joint_set``, ``normalize`` (N,), and ``paths`` their images. ``annotated`` (N, K): the
    joints that have a position. Every image must exist: the first missing one is named in the
    error (``title`` names the dataset). ``split_number`` seeds the split's augmentation apart.
    """

    joint_set = None  # set by each dataset

    def __init__(self, title, split_number, paths, annotations, annotated, size, augment, seed):
        missing = [path for path in dict.fromkeys(paths) if not os.path.isfile(path)]
        if missing:
            folder = os.path.dirname(missing[0])
            raise MissingFileError(f"{title} image not found: {missing[0]} ({len(missing)} of the "
                                   f"{len(set(paths))} images of this split are missing from {folder})")
        self.title, self.split_number, self.paths = title, split_number, list(paths)
        self.annotations, self.annotated = annotations, annotated
        self.size, self.augment, self.seed = size, augment, seed
        self.epoch = 0

    def set_epoch(self, epoch):
        """Draws new augmentation for ``epoch``."""
        self.epoch = epoch

    def __len__(self):
        return len(self.paths)

    def _crop(self, index, rng):
        """The crop's matrix and whether it is mirrored: augmented from ``rng``, or the plain 200·scale box."""
        centre, scale = self.annotations["center"][index], self.annotations["scale"][index]
        if not self.augment:
            return crop_matrix(centre, scale, self.size), False
        scale = scale * rng.uniform(0.75, 1.25)
        rotation = rng.uniform(-30, 30) if rng.random() < 0.6 else 0.0
        flip = bool(rng.random() < 0.5)
        return crop_matrix(centre, scale, self.size, rotation, flip), flip

    def keypoints(self, index):
        """Person ``index``'s keypoints (K, 2) in its plain crop, and which are annotated and inside it."""
        matrix = crop_matrix(self.annotations["center"][index], self.annotations["scale"][index], self.size)
        keypoints = transform_points(self.annotations["part"][index], matrix)
        return keypoints, self.annotated[index] & inside(keypoints, self.size)

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.split_number, self.epoch, index])
        image = cv2.imread(self.paths[index], cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"{self.title} image {self.paths[index]} could not be decoded")
        matrix, flip = self._crop(index, rng)
        crop = warp_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), matrix, self.size)
        if self.augment:
            crop = jitter_colour(crop, rng)
        original = self.annotations["part"][index]
        annotated = self.annotated[index]
        keypoints = transform_points(original, matrix)
        if flip:
            original, annotated, keypoints = (flip_joint_order(array, self.joint_set.flip_pairs)
                                              for array in (original, annotated, keypoints))
        visible = annotated & inside(keypoints, self.size)
        return make_sample(index, crop, keypoints, visible, original, annotated,
                           self.annotations["normalize"][index], invert_matrix(matrix))
