"""COCO person keypoints: ``annotations/person_keypoints_{train,val}2017.json`` and the image
folders ``train2017/``, ``val2017/`` of a COCO folder, cropped top-down as the peers do: each
annotated person (not a crowd, at least one keypoint, a box of positive size) is the square
around its box (:func:`~fasthg.data.transforms.box_crop_square`), cropped and augmented as
:class:`~fasthg.data.person_crops.PersonCrops` says, with COCO's 17 joints (fasthg.joint_sets).

A keypoint is (x, y, v): v = 0 not labelled, 1 labelled but hidden, 2 labelled and seen; labelled
joints are ``annotated``. An item's ``normalize`` is the person's object scale sqrt(area), the
length OKS divides distances by (COCO has no head boxes, so no PCKh); COCO is scored by OKS AP
through pycocotools (:mod:`fasthg.pose.coco_eval`).
"""
import json
import os

import numpy as np

from ..errors import MissingFileError, UserError
from ..joint_sets import COCO_17
from .person_crops import PersonCrops
from .transforms import box_crop_square

SPLIT_FOLDERS = {"train": "train2017", "val": "val2017"}
_SPLIT_NUMBERS = {"train": 0, "val": 1}


def annotation_path(root, split, annotation_dir=None):
    """``person_keypoints_{train,val}2017.json`` in ``annotation_dir`` (default: ``root/annotations``)."""
    return os.path.join(annotation_dir or os.path.join(root, "annotations"), f"person_keypoints_{SPLIT_FOLDERS[split]}.json")


def read_coco_keypoints(path):
    """The parsed COCO keypoints file at ``path`` (a dict), after checking that it is one: a JSON
    object with ``images``, ``annotations`` and a ``person`` category whose ``keypoints`` name
    COCO's 17 joints, every annotation with 51 keypoint values. One-line errors otherwise."""
    if not os.path.isfile(path):
        raise MissingFileError(f"COCO annotation file not found: {path} (give the folder of person_keypoints_*.json "
                               "with --annot-dir, or keep it in annotations/ under --data-dir)")
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"COCO annotation file {path} is not a readable JSON file: {error}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list) for key in ("images", "annotations", "categories")):
        raise UserError(f"COCO annotation file {path}: expected a JSON object with lists images, annotations and categories")
    persons = [c for c in data["categories"] if isinstance(c, dict) and c.get("name") == "person"]
    if not persons or list(persons[0].get("keypoints") or []) != list(COCO_17.names):
        raise UserError(f"COCO annotation file {path} has no person keypoints: expected a person category whose keypoints "
                        "are COCO's 17 (a person_keypoints_*.json, not instances_*.json)")
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict) or len(annotation.get("keypoints") or ()) != 3 * len(COCO_17):
            raise UserError(f"COCO annotation file {path}: annotation {annotation.get('id') if isinstance(annotation, dict) else '?'} "
                            f"lacks its keypoints (expected {3 * len(COCO_17)} values x, y, v)")
    return data


def coco_people(data, image_dir):
    """Per annotated person of ``data`` (:func:`read_coco_keypoints`): ``image_id``, ``path``,
    ``center`` (N, 2), ``scale`` (N,), ``part`` (N, 17, 2), ``labelled`` (N, 17) and ``normalize``
    (N,) sqrt(area), in the order of the file's annotations."""
    files = {image["id"]: image["file_name"] for image in data["images"]}
    rows = []
    for annotation in data["annotations"]:
        try:
            x, y, width, height = (float(value) for value in annotation["bbox"])
            keypoints = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(len(COCO_17), 3)
            if annotation.get("iscrowd", 0) or not (keypoints[:, 2] > 0).any() or width <= 0 or height <= 0:
                continue
            path, area = os.path.join(image_dir, files[annotation["image_id"]]), float(annotation["area"])
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"COCO annotations: annotation {annotation.get('id')} is malformed ({type(error).__name__}: "
                            f"{error})") from None
        center, scale = box_crop_square(x, y, x + width, y + height)
        rows.append((annotation["image_id"], path, center, scale, keypoints[:, :2], keypoints[:, 2] > 0, np.sqrt(area)))
    if not rows:
        raise UserError("COCO annotations: no person has a labelled keypoint")
    image_id, path, center, scale, part, labelled, normalize = zip(*rows)
    return {"image_id": np.array(image_id), "path": list(path), "center": np.array(center), "scale": np.array(scale),
            "part": np.stack(part), "labelled": np.stack(labelled), "normalize": np.array(normalize)}


class COCOPoses(PersonCrops):
    """People of COCO's ``split`` ("train" or "val") as :func:`~fasthg.data.sample.make_sample`
    items, from the COCO folder ``root`` (images in ``train2017``/``val2017``) and its
    ``annotation_dir`` (default ``root/annotations``). ``data`` is the parsed annotation file, which
    scoring hands to pycocotools; ``image_ids`` (N,) each item's image."""

    joint_set = COCO_17

    def __init__(self, split, root, annotation_dir=None, size=256, augment=False, seed=0):
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"split: expected one of {', '.join(map(repr, SPLIT_FOLDERS))}, got {split!r}")
        image_dir = os.path.join(root, SPLIT_FOLDERS[split])
        if not os.path.isdir(image_dir):
            raise MissingFileError(f"COCO image folder not found: {image_dir} (give the COCO folder, which holds "
                                   f"{SPLIT_FOLDERS[split]}/, with --data-dir)")
        self.data = read_coco_keypoints(annotation_path(root, split, annotation_dir))
        people = coco_people(self.data, image_dir)
        self.image_ids = people["image_id"]
        super().__init__("COCO", _SPLIT_NUMBERS[split], people["path"], people, people["labelled"], size, augment, seed)
