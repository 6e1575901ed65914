"""MPII Human Pose's official annotations, ``mpii_human_pose_v1_u12_1.mat``, as the per-person
arrays princeton-vl's ``train.h5``/``valid.h5`` hold.

The file holds a MATLAB struct ``RELEASE``: ``annolist`` has one entry per image (``image.name``
and ``annorect``, one entry per person: head box ``x1, y1, x2, y2``, ``objpos.x, .y`` the centre,
``scale`` the person's height / 200 pixels, ``annopoints.point`` the joints, each ``id`` 0-15 in
MPII order, ``x``, ``y`` and ``is_visible``); ``img_train`` flags the images of the training set
(the test set's people carry no joints). Read with ``scipy_io.loadmat(squeeze_me=True)``, a
one-element array arrives as its element and a missing value as an empty array, so every field is
read through :func:`_items` and :func:`_value`.

Per person, as princeton-vl's conversion (pose-hg-train, ``src/misc/mpii.py``) defines them:
``center`` = objpos, ``scale`` as given, ``part`` (16, 2) with (0, 0) for a joint the person
lacks, ``visible`` = is_visible (1 where the field is absent or empty, 0 for a missing joint),
``normalize`` = 0.6 * ||(x2 - x1, y2 - y1)||, the PCKh head size. princeton's files truncate
joints and head boxes to integer pixels; here they keep the official values, so the two agree to
within a pixel and a head size to within 0.6 * sqrt(2) pixels.

princeton's validation split is a list of people (image, person) that only their ``valid.h5``
holds: :func:`split_people` takes it from that file, matching each of its people to the official
person of the same image whose centre lies within :data:`CENTRE_TOLERANCE` pixels.
"""
import numpy as np

from ..errors import UserError
from ..extras import require
from ..joints import NUM_JOINTS

OFFICIAL_FILE = "mpii_human_pose_v1_u12_1.mat"
HEAD_SIZE_PER_DIAGONAL = 0.6
CENTRE_TOLERANCE = 1.0


def _items(value):
    """The elements of a MATLAB struct array as a list: squeeze_me turns one element into the
    element itself and none into an empty array."""
    if isinstance(value, np.ndarray):
        return list(value.flat)
    return [value]


def _value(value):
    """A numeric field as a float, None when it is empty (MATLAB's [])."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.item()
    if isinstance(value, str):
        value = value.strip()
        return float(value) if value else None
    return float(value)


def _field(struct, name):
    """Field ``name`` of a struct, None when the struct lacks it or it is empty."""
    value = getattr(struct, name, None)
    if value is None or (isinstance(value, np.ndarray) and value.size == 0):
        return None
    return value


def _person(rect, where):
    """(center, scale, part, visible, head box) of one annorect, or None when it has no joints."""
    annopoints = _field(rect, "annopoints")
    objpos, scale = _field(rect, "objpos"), _field(rect, "scale")
    if annopoints is None or objpos is None or scale is None or _field(annopoints, "point") is None:
        return None
    try:
        center = (_value(objpos.x), _value(objpos.y))
        head = tuple(_value(getattr(rect, name)) for name in ("x1", "y1", "x2", "y2"))
        part, visible = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS, dtype=np.int64)
        for point in _items(annopoints.point):
            joint = int(_value(point.id))
            if not 0 <= joint < NUM_JOINTS:
                raise ValueError(f"joint id {joint} is not in 0-{NUM_JOINTS - 1}")
            part[joint] = _value(point.x), _value(point.y)
            shown = _field(point, "is_visible")
            shown = None if shown is None else _value(shown)
            visible[joint] = 1 if shown is None else int(shown)
        scale = _value(scale)
    except (AttributeError, TypeError, ValueError) as error:
        raise UserError(f"MPII annotation file: {where} is malformed ({error})") from None
    if None in center or None in head or scale is None or not scale > 0:
        raise UserError(f"MPII annotation file: {where} has joints but lacks its centre, scale or head box")
    return center, scale, part, visible, head


def read_official_annotations(path):
    """The annotated people of the official .mat at ``path``: a dict of arrays, one row per person,
    in the file's order: ``imgname`` (N,), ``center`` (N, 2), ``scale`` (N,), ``part`` (N, 16, 2),
    ``visible`` (N, 16), ``normalize`` (N,), ``head_box`` (N, 4) x1, y1, x2, y2, ``index`` (N,) the
    image's position in annolist and ``person`` (N,) the person's in its annorect (from 0).

    Raises UserError (one line) for a file that is not a readable MATLAB file or lacks the
    release's structure, naming the first malformed image or person.
    """
    scipy_io = require("scipy.io")  # only this reader needs scipy
    try:
        release = scipy_io.loadmat(path, struct_as_record=False, squeeze_me=True)["RELEASE"]
        annolist, flags = _items(release.annolist), np.atleast_1d(release.img_train)
    except KeyError:
        raise UserError(f"MPII annotation file {path} holds no RELEASE struct (expected the official "
                        f"{OFFICIAL_FILE})") from None
    except AttributeError as error:
        raise UserError(f"MPII annotation file {path} lacks the release's fields ({error})") from None
    except Exception as error:  # scipy raises many kinds for a truncated or foreign file
        raise UserError(f"MPII annotation file {path} is not a readable MATLAB file: {error}") from None
    if len(flags) != len(annolist):
        raise UserError(f"MPII annotation file {path}: img_train has {len(flags)} flags for {len(annolist)} images")
    rows = []
    for index, (image, train) in enumerate(zip(annolist, flags)):
        if not train or _field(image, "annorect") is None:
            continue
        try:
            name = str(image.image.name)
        except AttributeError:
            raise UserError(f"MPII annotation file {path}: image {index} has no image.name") from None
        for person, rect in enumerate(_items(image.annorect)):
            found = _person(rect, f"person {person} of image {index} ({name})")
            if found is not None:
                rows.append((name, index, person) + found)
    if not rows:
        raise UserError(f"MPII annotation file {path} annotates no person's joints")
    names, index, person, center, scale, part, visible, head = zip(*rows)
    head = np.array(head, dtype=np.float64)
    return {
        "imgname": np.array(names), "index": np.array(index), "person": np.array(person),
        "center": np.array(center, dtype=np.float64), "scale": np.array(scale, dtype=np.float64),
        "part": np.stack(part), "visible": np.stack(visible), "head_box": head,
        "normalize": HEAD_SIZE_PER_DIAGONAL * np.hypot(head[:, 2] - head[:, 0], head[:, 3] - head[:, 1]),
    }


def split_people(official, valid):
    """(train rows, valid rows) of ``official`` (:func:`read_official_annotations`): the valid rows
    are the people of princeton's ``valid`` fields (imgname, center), in their order, each the
    official person of that image nearest its centre; the train rows all the others.

    Raises UserError naming the first person of ``valid`` that no official person matches.
    """
    rows_of_image = {}
    for row, name in enumerate(official["imgname"]):
        rows_of_image.setdefault(name, []).append(row)
    chosen = []
    for name, centre in zip(valid["imgname"], valid["center"]):
        rows = rows_of_image.get(name, [])
        distances = [np.linalg.norm(official["center"][row] - centre) for row in rows]
        if not rows or min(distances) > CENTRE_TOLERANCE:
            raise UserError(f"MPII validation person at {tuple(map(float, centre))} in {name} (valid.h5) matches no annotated "
                            f"person of the official annotations within {CENTRE_TOLERANCE} pixels")
        chosen.append(rows[int(np.argmin(distances))])
    valid_rows = np.array(chosen, dtype=np.int64)
    train_rows = np.setdiff1d(np.arange(len(official["imgname"])), valid_rows)
    return train_rows, valid_rows
