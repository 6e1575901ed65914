"""MPII Human Pose from princeton-vl's annotation files (``train.h5``, ``valid.h5``) or the official
``mpii_human_pose_v1_u12_1.mat`` (:mod:`fasthg.data.mpii_official`), and an image folder; people
are cropped and augmented as :class:`~fasthg.data.person_crops.PersonCrops` says.
"""
import os

import numpy as np

from ..errors import MissingFileError, UserError
from ..extras import LazyModule
from ..joint_sets import MPII_16
from ..joints import NUM_JOINTS
from .mpii_official import OFFICIAL_FILE, read_official_annotations, split_people
from .person_crops import PersonCrops

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


def split_annotations(annotation_dir, split):
    """The people of ``split`` ("train" or "valid") from the folder ``annotation_dir``.

    Where the folder holds the official ``mpii_human_pose_v1_u12_1.mat``, it is read, and split
    as princeton-vl split it: "valid" is the people of ``valid.h5`` (which must lie beside it),
    "train" every other annotated person of the training images. Otherwise princeton's
    ``{split}.h5``.
    """
    official = os.path.join(annotation_dir, OFFICIAL_FILE)
    if not os.path.isfile(official):
        return read_annotations(os.path.join(annotation_dir, f"{split}.h5"))
    valid_path = os.path.join(annotation_dir, "valid.h5")
    if not os.path.isfile(valid_path):
        raise MissingFileError(f"MPII validation split not found: {valid_path} (princeton-vl's list of validation "
                               f"people, which the official {OFFICIAL_FILE} lacks: put their valid.h5 beside it)")
    people = read_official_annotations(official)
    train_rows, valid_rows = split_people(people, read_annotations(valid_path))
    rows = valid_rows if split == "valid" else train_rows
    return {name: values[rows] for name, values in people.items()}


class MPIIPoses(PersonCrops):
    """People of MPII's ``split`` ("train" or "valid") as :func:`~fasthg.data.sample.make_sample` items.

    image_dir: the folder of MPII's images; annotation_dir: the folder of ``{split}.h5``, or of the
    official .mat and valid.h5 (:func:`split_annotations`; default: ``annot`` beside the image
    folder). Every image the annotations name must exist: the first missing one is named in the
    error. ``augment`` turns on the random crops, mirrors and colours.
    """

    joint_set = MPII_16

    def __init__(self, split, image_dir, annotation_dir=None, size=256, augment=False, seed=0):
        if split not in _SPLITS:
            raise ValueError(f"split: expected one of {', '.join(map(repr, _SPLITS))}, got {split!r}")
        if not os.path.isdir(image_dir):
            raise MissingFileError(f"MPII image folder not found: {image_dir} (give the folder of MPII's images with --data-dir)")
        annotations = split_annotations(annotation_dir or default_annotation_dir(image_dir), split)
        part = annotations["part"]
        super().__init__("MPII", _SPLITS[split], [os.path.join(image_dir, name) for name in annotations["imgname"]],
                         annotations, ~((part[..., 0] == 0) & (part[..., 1] == 0)), size, augment, seed)
        self.split = split
