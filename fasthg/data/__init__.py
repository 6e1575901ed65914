"""Pose datasets: the built-in synthetic figures (the default), MPII and COCO, yielding one item
format (:func:`fasthg.data.sample.make_sample`) with a split named "train" or "val"."""
from ..joint_sets import COCO_17, MPII_16
from .coco import COCOPoses
from .mpii import MPIIPoses
from .synthetic import SyntheticPoses

DATASETS = ("synthetic", "mpii", "coco")
# The joints each dataset annotates, which a model trained or scored on it predicts.
JOINT_SETS = {"synthetic": MPII_16, "mpii": MPII_16, "coco": COCO_17}
# The datasets read from files, which need --data-dir.
ON_DISK = {"mpii": "the folder of MPII's images", "coco": "the COCO folder (train2017/, val2017/, annotations/)"}


def make_dataset(name, split, size, seed=0, length=None, image_dir=None, annotation_dir=None):
    """The ``split`` ("train" or "val") of dataset ``name`` with crops of ``size`` pixels.

    synthetic: ``length`` samples (fresh figures every training epoch); mpii: ``image_dir`` and
    ``annotation_dir`` as for :class:`MPIIPoses`; coco: ``image_dir`` the COCO folder and
    ``annotation_dir`` as for :class:`COCOPoses`; augmented when training.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    if name == "synthetic":
        return SyntheticPoses(split, length, size, seed)
    if name == "mpii":
        return MPIIPoses("train" if split == "train" else "valid", image_dir, annotation_dir, size,
                         augment=split == "train", seed=seed)
    if name == "coco":
        return COCOPoses(split, image_dir, annotation_dir, size, augment=split == "train", seed=seed)
    raise ValueError(f"dataset: expected one of {', '.join(map(repr, DATASETS))}, got {name!r}")
