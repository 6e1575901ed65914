"""MPII Human Pose from princeton-vl's annotation files (``train.h5``, ``valid.h5``) and an image folder.

Each annotated person is cropped as a square of side 200·scale around its centre
(docs/conventions.md) by one OpenCV affine warp that also applies the training augmentation: scale x [0.75, 1.25],
rotation in [-30, 30] degrees, a left-right mirror with the joints' flip pairs, and colour
jitter. Augmentation is drawn from (seed, split, epoch, index), so a resumed or distributed run
sees exactly the crops an uninterrupted one would.
"""
import os

import numpy as np
import torch

from ..errors import MissingFileError, UserError
from ..extras import LazyModule
from ..joints import NUM_JOINTS
from .sample import make_sample
from .transforms import crop_matrix, flip_joint_order, inside, invert_matrix, jitter_colour, transform_points, warp_image

cv2, h5py = LazyModule("cv2"), LazyModule("h5py")

_SPLITS = {"train": 0, "valid": 1}
_FIELDS = ("center", "scale", "part", "normalize", "imgname")


def default_annotation_dir(image_dir):
    """princeton-vl's layout: ``MPII/images`` beside ``MPII/annot``."""
    return os.path.join(os.path.dirname(os.path.abspath(image_dir)), "annot")


def read_annotations(path):
    """The fields of one annotation file as NumPy arrays (imgname as str); a clear error when absent or broken."""
    if not os.path.isfile(path):
        raise MissingFileError(f"MPII annotation file not found: {path} (princeton-vl's train.h5/valid.h5; "
                               "give their folder with --annot-dir)")
    try:
        with h5py.File(path, "r") as file:
            missing = [name for name in _FIELDS if name not in file]
            if missing:
                raise UserError(f"MPII annotation file {path} lacks the fields {missing}")
            fields = {name: file[name][()] for name in _FIELDS}
    except OSError as error:
        raise UserError(f"MPII annotation file {path} is not a readable HDF5 file: {error}") from None
    fields["imgname"] = np.array([name.decode() if isinstance(name, bytes) else str(name) for name in fields["imgname"]])
    if fields["part"].shape[1:] != (NUM_JOINTS, 2):
        raise UserError(f"MPII annotation file {path}: expected part of shape (N, {NUM_JOINTS}, 2), got {fields['part'].shape}")
    return fields


class MPIIPoses(torch.utils.data.Dataset):
    """People of MPII's ``split`` ("train" or "valid") as :func:`~fasthg.data.sample.make_sample` items.

    image_dir: the folder of MPII's images; annotation_dir: the folder of ``{split}.h5`` (default:
    ``annot`` beside the image folder). Every image the annotations name must exist: the first
    missing one is named in the error. ``augment`` turns on the random crops, mirrors and colours.
    """

    def __init__(self, split, image_dir, annotation_dir=None, size=256, augment=False, seed=0):
        if split not in _SPLITS:
            raise ValueError(f"split: expected one of {', '.join(map(repr, _SPLITS))}, got {split!r}")
        if not os.path.isdir(image_dir):
            raise MissingFileError(f"MPII image folder not found: {image_dir} (give the folder of MPII's images with --data-dir)")
        annotation_dir = annotation_dir or default_annotation_dir(image_dir)
        self.annotations = read_annotations(os.path.join(annotation_dir, f"{split}.h5"))
        self.paths = [os.path.join(image_dir, name) for name in self.annotations["imgname"]]
        missing = [path for path in dict.fromkeys(self.paths) if not os.path.isfile(path)]
        if missing:
            raise MissingFileError(f"MPII image not found: {missing[0]} ({len(missing)} of the "
                                   f"{len(set(self.paths))} images named in {split}.h5 are missing from {image_dir})")
        part = self.annotations["part"]
        self.annotated = ~((part[..., 0] == 0) & (part[..., 1] == 0))
        self.split, self.size, self.augment, self.seed = split, size, augment, seed
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
        """Person ``index``'s keypoints (16, 2) in its plain crop, and which are annotated and inside it."""
        matrix = crop_matrix(self.annotations["center"][index], self.annotations["scale"][index], self.size)
        keypoints = transform_points(self.annotations["part"][index], matrix)
        return keypoints, self.annotated[index] & inside(keypoints, self.size)

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], self.epoch, index])
        image = cv2.imread(self.paths[index], cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"MPII image {self.paths[index]} could not be decoded")
        matrix, flip = self._crop(index, rng)
        crop = warp_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), matrix, self.size)
        if self.augment:
            crop = jitter_colour(crop, rng)
        original = self.annotations["part"][index]
        annotated = self.annotated[index]
        keypoints = transform_points(original, matrix)
        if flip:
            original, annotated, keypoints = (flip_joint_order(array) for array in (original, annotated, keypoints))
        visible = annotated & inside(keypoints, self.size)
        return make_sample(index, crop, keypoints, visible, original, annotated,
                           self.annotations["normalize"][index], invert_matrix(matrix))
