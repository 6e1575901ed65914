"""MPII's official annotations (mpii_human_pose_v1_u12_1.mat), written in the tests with the
release's structure by scipy.io.savemat: the squeeze quirks, princeton's split, and bad files."""
import shutil

import h5py
import numpy as np
import pytest
import scipy.io

from fasthg.data.mpii import MPIIPoses, split_annotations
from fasthg.data.mpii_official import OFFICIAL_FILE, read_official_annotations
from fasthg.errors import MissingFileError, UserError
from mpii_annotations import valid_h5

EMPTY = np.zeros((0, 0))


def struct_array(records):
    """A 1 x n MATLAB struct array of dicts (fields a record lacks are [] as in the release)."""
    names = list(dict.fromkeys(name for record in records for name in record))
    array = np.zeros((1, len(records)), dtype=[(name, object) for name in names])
    for i, record in enumerate(records):
        for name in names:
            array[0, i][name] = record.get(name, EMPTY)
    return array


def person(center, scale, head, points):
    """An annorect: head box (x1, y1, x2, y2), objpos, scale and annopoints of (id, x, y, is_visible)."""
    x1, y1, x2, y2 = head
    rect = {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "objpos": {"x": center[0], "y": center[1]}, "scale": scale}
    if points is not None:
        rect["annopoints"] = {"point": struct_array(
            [{"id": j, "x": x, "y": y, **({} if v is None else {"is_visible": v})} for j, x, y, v in points])}
    return rect


def write_release(path, images):
    """The official file's layout: RELEASE.annolist (image.name, annorect), img_train, single_person, act."""
    annolist = struct_array([{"image": {"name": name}, "annorect": struct_array(rects) if rects else EMPTY,
                              "frame_sec": EMPTY, "vididx": EMPTY} for name, _, rects in images])
    release = {"annolist": annolist, "img_train": np.array([[train for _, train, _ in images]], dtype=np.uint8),
               "single_person": np.empty((len(images), 1), dtype=object),
               "act": struct_array([{"cat_name": "", "act_name": "", "act_id": -1} for _ in images])}
    for row in range(len(images)):
        release["single_person"][row, 0] = np.array([[1]])
    scipy.io.savemat(path, {"RELEASE": release})


# Image a: one person (squeezed to a bare struct), a joint without is_visible and one given as the
# string '0'; image b: two people, the second without joints; image c: a test image (no joints).
SMALL = [
    ("a.jpg", 1, [person((100.0, 200.0), 1.5, (90, 80, 120, 120),
                         [(0, 10.5, 20.25, 1), (9, 30.0, 40.0, "0"), (15, 50.0, 60.0, None)])]),
    ("b.jpg", 1, [person((300.0, 310.0), 2.0, (10, 10, 16, 18), [(6, 7.0, 8.0, 1), (7, 9.0, 10.0, 0)]),
                  person((400.0, 410.0), 2.5, (0, 0, 1, 1), None)]),
    ("c.jpg", 0, [person((5.0, 6.0), 1.0, (0, 0, 3, 4), None)]),
]


def test_the_official_structure_gives_each_annotated_persons_joints_centre_scale_and_head_size(tmp_path):
    path = tmp_path / OFFICIAL_FILE
    write_release(path, SMALL)
    people = read_official_annotations(path)
    assert people["imgname"].tolist() == ["a.jpg", "b.jpg"]
    assert people["index"].tolist() == [0, 1] and people["person"].tolist() == [0, 0]
    np.testing.assert_array_equal(people["center"], [[100, 200], [300, 310]])
    np.testing.assert_array_equal(people["scale"], [1.5, 2.0])
    # 0.6 x the head box's diagonal: (30, 40) -> 50 -> 30; (6, 8) -> 10 -> 6.
    np.testing.assert_allclose(people["normalize"], [30.0, 6.0], rtol=1e-12)
    expected = np.zeros((2, 16, 2))
    expected[0, [0, 9, 15]] = [[10.5, 20.25], [30, 40], [50, 60]]
    expected[1, [6, 7]] = [[7, 8], [9, 10]]
    np.testing.assert_array_equal(people["part"], expected)
    visible = np.zeros((2, 16), dtype=int)
    visible[0, [0, 15]] = 1  # is_visible '0' for joint 9; absent for joint 15 counts as visible
    visible[1, 6] = 1
    np.testing.assert_array_equal(people["visible"], visible)


def test_the_split_is_princetons_valid_people_matched_by_image_and_centre(tmp_path):
    write_release(tmp_path / OFFICIAL_FILE, SMALL)
    with h5py.File(tmp_path / "valid.h5", "w") as file:
        file["imgname"] = np.array([b"b.jpg"])
        file["center"] = np.array([[300.4, 309.7]])  # within a pixel of b's first person
        file["scale"], file["normalize"], file["part"] = np.array([2.0]), np.array([6.0]), np.zeros((1, 16, 2))
    assert split_annotations(str(tmp_path), "valid")["imgname"].tolist() == ["b.jpg"]
    assert split_annotations(str(tmp_path), "train")["imgname"].tolist() == ["a.jpg"]
    with h5py.File(tmp_path / "valid.h5", "r+") as file:
        file["center"][0] = [303.0, 310.0]
    with pytest.raises(UserError, match=r"MPII validation person at \(303.0, 310.0\) in b.jpg .*matches no annotated person"):
        split_annotations(str(tmp_path), "valid")
    (tmp_path / "valid.h5").unlink()
    with pytest.raises(MissingFileError, match="MPII validation split not found: .*valid.h5"):
        split_annotations(str(tmp_path), "train")


def test_the_official_file_agrees_with_princetons_valid_h5(tmp_path):
    """valid.h5's people written in the official structure (head boxes of its normalisers'
    diagonals, joints it annotates, one person not in it): the same people, joints and head sizes."""
    with h5py.File(valid_h5(), "r") as file:
        fields = {name: file[name][()] for name in ("imgname", "center", "scale", "part", "visible", "normalize")}
    names = [name.decode() for name in fields["imgname"]]
    rects = {}
    for i, name in enumerate(names):
        side = fields["normalize"][i] / 0.6 / np.sqrt(2)
        x, y = fields["center"][i]
        points = [(j, *fields["part"][i, j], int(fields["visible"][i, j])) for j in range(16)
                  if fields["part"][i, j].any()]
        rects.setdefault(name, []).append(person((x, y), fields["scale"][i], (x, y, x + side, y + side), points))
    rects[names[0]].append(person((1.0, 2.0), 3.0, (0, 0, 6, 8), [(0, 1.0, 1.0, 1)]))  # a training person
    write_release(tmp_path / OFFICIAL_FILE, [(name, 1, people) for name, people in rects.items()])
    shutil.copy(valid_h5(), tmp_path / "valid.h5")
    valid = split_annotations(str(tmp_path), "valid")
    assert valid["imgname"].tolist() == names
    np.testing.assert_array_equal(valid["center"], fields["center"])
    np.testing.assert_array_equal(valid["part"], fields["part"])
    np.testing.assert_array_equal(valid["visible"] * fields["part"].any(-1), fields["visible"])
    np.testing.assert_allclose(valid["normalize"], fields["normalize"], rtol=1e-12)
    train = split_annotations(str(tmp_path), "train")
    assert train["imgname"].tolist() == [names[0]] and train["center"].tolist() == [[1.0, 2.0]]


def test_mpii_poses_reads_the_official_file(tmp_path):
    write_release(tmp_path / OFFICIAL_FILE, SMALL)
    with h5py.File(tmp_path / "valid.h5", "w") as file:
        file["imgname"], file["center"] = np.array([b"b.jpg"]), np.array([[300.0, 310.0]])
        file["scale"], file["normalize"], file["part"] = np.array([2.0]), np.array([6.0]), np.zeros((1, 16, 2))
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"")
    with pytest.raises(MissingFileError, match="MPII image not found: .*b.jpg"):
        MPIIPoses("valid", str(images), str(tmp_path))
    assert len(MPIIPoses("train", str(images), str(tmp_path))) == 1


@pytest.mark.parametrize("damage, words", [
    ("truncate", "is not a readable MATLAB file"),
    ("other struct", "holds no RELEASE struct"),
    ("bad joint id", r"person 0 of image 0 \(a.jpg\) is malformed \(joint id 16 is not in 0-15\)"),
    ("no head box", r"person 0 of image 0 \(a.jpg\) has joints but lacks its centre, scale or head box"),
])
def test_a_malformed_official_file_is_one_clear_error(tmp_path, damage, words):
    path = tmp_path / OFFICIAL_FILE
    if damage == "other struct":
        scipy.io.savemat(path, {"annolist": np.zeros(3)})
    elif damage == "bad joint id":
        write_release(path, [("a.jpg", 1, [person((1.0, 1.0), 1.0, (0, 0, 1, 1), [(16, 1.0, 1.0, 1)])])])
    elif damage == "no head box":
        rect = person((1.0, 1.0), 1.0, (0, 0, 1, 1), [(0, 1.0, 1.0, 1)])
        rect["x2"] = EMPTY
        write_release(path, [("a.jpg", 1, [rect])])
    else:
        write_release(path, SMALL)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=words) as error:
        read_official_annotations(path)
    assert "\n" not in str(error.value)
