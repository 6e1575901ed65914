"""Datasets and crops: the synthetic figures, MPII on stand-in images, and the affine helpers."""
import cv2
import h5py
import numpy as np
import pytest

from fasthg.data import SyntheticPoses, make_dataset
from fasthg.data.mpii import MPIIPoses
from fasthg.data.transforms import crop_matrix, invert_matrix, transform_points, warp_image
from fasthg.errors import MissingFileError, UserError
from fasthg.joints import JOINT_NAMES
from fasthg.metrics import pckh
from fasthg.pose.evaluation import mean_pose
from mpii_annotations import valid_h5


R_WRIST, L_WRIST = JOINT_NAMES.index("r_wrist"), JOINT_NAMES.index("l_wrist")


def _centroid(mask):
    """Centre of a pixel mask in continuous coordinates (pixel i covers [i, i + 1))."""
    rows, columns = np.nonzero(mask)
    assert len(rows), "the dot is not in the crop"
    return np.array([columns.mean() + 0.5, rows.mean() + 0.5])


def _draw_dot(image, point, colour, radius):
    shift = 4  # sub-pixel centre: continuous (x, y) is pixel index (x - 0.5, y - 0.5)
    centre = tuple(int(round((c - 0.5) * (1 << shift))) for c in point)
    cv2.circle(image, centre, radius << shift, colour, -1, cv2.LINE_8, shift)


# --- affine helpers --------------------------------------------------------------------------

@pytest.mark.parametrize("rotation, flip", [(0.0, False), (25.0, False), (-40.0, True)])
def test_warp_moves_pixels_where_transform_points_moves_coordinates(rotation, flip):
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    point = np.array([231.3, 118.6])
    _draw_dot(image, point, (255, 255, 255), 6)
    matrix = crop_matrix((200.0, 150.0), 1.2, 128, rotation, flip)
    crop = warp_image(image, matrix, 128)
    np.testing.assert_allclose(_centroid(crop[..., 0] > 127), transform_points(point, matrix), atol=0.35)
    np.testing.assert_allclose(transform_points(transform_points(point, matrix), invert_matrix(matrix)), point, atol=1e-9)


def test_crop_matrix_puts_the_centre_in_the_middle_and_turns_counter_clockwise():
    matrix = crop_matrix((50.0, 60.0), 1.0, 200, rotation=90)
    np.testing.assert_allclose(transform_points([50.0, 60.0], matrix), [100.0, 100.0], atol=1e-12)
    # A point right of the centre ends up above it on screen (y points down).
    np.testing.assert_allclose(transform_points([60.0, 60.0], matrix), [100.0, 90.0], atol=1e-12)
    mirrored = crop_matrix((50.0, 60.0), 1.0, 200, flip=True)
    np.testing.assert_allclose(transform_points([60.0, 60.0], mirrored), [90.0, 100.0], atol=1e-12)


# --- synthetic figures -----------------------------------------------------------------------

def test_synthetic_items_are_deterministic_per_seed_split_and_epoch():
    first, again = SyntheticPoses("train", 8, 64, seed=3), SyntheticPoses("train", 8, 64, seed=3)
    item = first[5]
    assert item["image"].shape == (64, 64, 3) and item["image"].dtype == np.uint8
    assert item["keypoints"].shape == (16, 2) and item["visible"].shape == (16,)
    np.testing.assert_array_equal(item["image"], again[5]["image"])
    np.testing.assert_array_equal(item["keypoints"], again[5]["keypoints"])
    assert not np.array_equal(item["image"], SyntheticPoses("train", 8, 64, seed=4)[5]["image"])
    assert not np.array_equal(item["image"], SyntheticPoses("val", 8, 64, seed=3)[5]["image"])
    again.set_epoch(1)
    assert not np.array_equal(item["keypoints"], again[5]["keypoints"])  # fresh figures each epoch
    validation = SyntheticPoses("val", 8, 64, seed=3)
    before = validation[2]["keypoints"]
    validation.set_epoch(7)
    np.testing.assert_array_equal(validation[2]["keypoints"], before)  # validation never changes
    np.testing.assert_allclose(first.keypoints(5)[0], item["keypoints"], atol=1e-4)


def test_synthetic_figures_are_not_solved_by_the_mean_pose():
    train, validation = SyntheticPoses("train", 400, 128), SyntheticPoses("val", 200, 128)
    items = [validation[i] for i in range(len(validation))]
    gt = np.stack([item["original_keypoints"] for item in items])
    annotated = np.stack([item["annotated"] for item in items])
    assert annotated.mean() > 0.95  # figures mostly inside the crop
    guess = np.broadcast_to(mean_pose(train), gt.shape)
    normalize = np.array([item["normalize"] for item in items])
    score = pckh(guess, gt, annotated, normalize)
    assert score["mean"] < 0.15, score
    assert pckh(gt, gt, annotated, normalize)["mean"] == 1.0


def test_synthetic_images_show_the_figure_at_its_keypoints():
    """The figure is drawn where its labels say: the image differs most along the limbs."""
    item = SyntheticPoses("val", 1, 128)[0]
    assert item["image"].std() > 10
    assert np.isfinite(item["keypoints"]).all() and (item["normalize"] > 2)


# --- MPII on stand-in images -----------------------------------------------------------------

@pytest.fixture(scope="module")
def stand_in_mpii(tmp_path_factory):
    """Annotations of the first people in the real valid.h5 (as valid.h5 and train.h5) and black
    stand-in images with a red dot at each person's right wrist and a green one at the left."""
    root = tmp_path_factory.mktemp("mpii")
    images, annotations = root / "images", root / "annot"
    images.mkdir()
    annotations.mkdir()
    with h5py.File(valid_h5(), "r") as source:
        fields = {name: source[name][()] for name in source}
    part = fields["part"]
    chosen = np.flatnonzero(np.all(part[:, [R_WRIST, L_WRIST]] != 0, axis=(1, 2)))
    _, first = np.unique(fields["imgname"][chosen], return_index=True)
    chosen = np.sort(chosen[first])[:6]  # one person per image: each image carries its own dots
    subset = {name: value[chosen] for name, value in fields.items()}
    for split in ("valid", "train"):
        with h5py.File(annotations / f"{split}.h5", "w") as target:
            for name, value in subset.items():
                target[name] = value
    for person in range(len(chosen)):
        points = subset["part"][person]
        image = np.zeros((int(points[:, 1].max()) + 300, int(points[:, 0].max()) + 300, 3), dtype=np.uint8)
        radius = max(3, int(subset["scale"][person] * 4))
        _draw_dot(image, points[R_WRIST], (0, 0, 255), radius)  # BGR: red
        _draw_dot(image, points[L_WRIST], (0, 255, 0), radius)
        cv2.imwrite(str(images / subset["imgname"][person].decode()), image)
    return images, annotations, subset


def _dots(crop):
    red = (crop[..., 0] > 100) & (crop[..., 1] < 60)
    green = (crop[..., 1] > 100) & (crop[..., 0] < 60)
    return _centroid(red), _centroid(green)


def test_mpii_validation_crops_land_where_the_annotations_say(stand_in_mpii):
    images, annotations, subset = stand_in_mpii
    dataset = make_dataset("mpii", "val", 128, image_dir=str(images), annotation_dir=str(annotations))
    assert len(dataset) == len(subset["part"])
    for index in range(len(dataset)):
        item = dataset[index]
        red, green = _dots(item["image"])
        np.testing.assert_allclose(red, item["keypoints"][R_WRIST], atol=1.0)
        np.testing.assert_allclose(green, item["keypoints"][L_WRIST], atol=1.0)
        back = transform_points(item["keypoints"], item["to_original"].astype(np.float64))
        np.testing.assert_allclose(back, subset["part"][index], atol=1e-3)
        np.testing.assert_array_equal(item["original_keypoints"], subset["part"][index].astype(np.float32))
        assert item["normalize"] == np.float32(subset["normalize"][index])


def test_mpii_augmented_crops_follow_rotation_scale_and_flip(stand_in_mpii):
    images, annotations, _ = stand_in_mpii
    dataset = MPIIPoses("train", str(images), str(annotations), size=128, augment=True, seed=1)
    flips = 0
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            red, green = _dots(item["image"])
            # The mirror image's right wrist is the person's left one: flip pairs swap the labels.
            flipped = np.linalg.norm(red - item["keypoints"][L_WRIST]) < np.linalg.norm(red - item["keypoints"][R_WRIST])
            flips += flipped
            right, left = (L_WRIST, R_WRIST) if flipped else (R_WRIST, L_WRIST)
            np.testing.assert_allclose(red, item["keypoints"][right], atol=1.0)
            np.testing.assert_allclose(green, item["keypoints"][left], atol=1.0)
    assert 0 < flips < 3 * len(dataset)
    dataset.set_epoch(0)
    np.testing.assert_array_equal(dataset[0]["image"], dataset[0]["image"])  # augmentation is reproducible


def test_mpii_missing_files_are_named(stand_in_mpii, tmp_path):
    images, annotations, subset = stand_in_mpii
    with pytest.raises(MissingFileError, match="MPII image folder not found: .*nowhere"):
        MPIIPoses("valid", str(tmp_path / "nowhere"), str(annotations))
    with pytest.raises(MissingFileError, match=r"MPII annotation file not found: .*valid\.h5"):
        MPIIPoses("valid", str(images), str(tmp_path))
    empty = tmp_path / "images"
    empty.mkdir()
    first = subset["imgname"][0].decode()
    with pytest.raises(MissingFileError, match=f"MPII image not found: .*{first}"):
        MPIIPoses("valid", str(empty), str(annotations))
    (tmp_path / "annot").mkdir()
    (tmp_path / "annot" / "valid.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        MPIIPoses("valid", str(images), str(tmp_path / "annot"))
