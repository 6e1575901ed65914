"""fasthg.PoseEstimator: crops, keypoints mapped back to image pixels exactly (with and without the
flip test), every image format, batches, and bad input."""
import numpy as np
import pytest
import torch

import fasthg
from fasthg.data.transforms import crop_matrix
from fasthg.pose.images import crop
from fasthg.pose.weights import SyntheticWeightsWarning
from pose_checkpoints import INPUT_SIZE, fasthg_checkpoint, tiny_posenet, write_checkpoints


STRIDE = 4  # input pixels per heatmap pixel


class FixedHeatmaps(fasthg.reference.PoseNet):
    """A PoseNet whose every joint's heatmap is 1 at heatmap pixel (u, v) and 0 elsewhere, whatever
    the image: princeton's decoding puts that joint at (u + 0.25, v + 0.25) heatmap pixels (a tie
    moves it -0.25, then +0.5), so at STRIDE * (u + 0.25, v + 0.25) in the crop."""

    def __init__(self, u, v):
        super().__init__(1, 4, 16)
        self.u, self.v = u, v

    def forward(self, imgs):
        maps = torch.zeros(imgs.shape[0], 1, 16, imgs.shape[1] // STRIDE, imgs.shape[2] // STRIDE)
        maps[..., self.v, self.u] = 1
        return maps


class BrightCells(fasthg.reference.PoseNet):
    """A PoseNet that mirrors exactly with its input: every joint's heatmap is the mean of the red
    channel over each 4x4 block, so the mirror image's heatmaps are the mirrored heatmaps."""

    def __init__(self):
        super().__init__(1, 4, 16)

    def forward(self, imgs):
        pooled = torch.nn.functional.avg_pool2d(imgs[..., 0][:, None], STRIDE)
        return pooled[:, None].expand(-1, 1, 16, -1, -1)


def crop_to_image(crop_points, centre, side, size=INPUT_SIZE):
    """Crop pixels to image pixels by the crop's definition: a square of ``side`` image pixels
    around ``centre``, spread over ``size`` crop pixels."""
    return np.asarray(centre) + (np.asarray(crop_points, dtype=np.float64) - size / 2) * side / size


def person_square(box):
    """(centre, side) of a person box's crop: its centre, 1.25 x its longer side."""
    x0, y0, x1, y1 = box
    return ((x0 + x1) / 2, (y0 + y1) / 2), 1.25 * max(x1 - x0, y1 - y0)


@pytest.mark.parametrize("box", [(10.0, 20.0, 90.0, 60.0), (-30.5, 3.25, 41.0, 170.0), None])
def test_keypoints_map_back_to_image_pixels_exactly(box):
    u, v = 5, 9
    estimator = fasthg.PoseEstimator(FixedHeatmaps(u, v), input_size=INPUT_SIZE)
    pose = estimator(np.zeros((120, 100, 3), np.uint8), box)
    centre, side = person_square(box) if box else ((50.0, 60.0), 120.0)  # no box: the whole image, centred
    expected = crop_to_image([STRIDE * (u + 0.25), STRIDE * (v + 0.25)], centre, side)
    np.testing.assert_allclose(pose.keypoints, np.broadcast_to(expected, (16, 2)), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(pose.confidence, np.ones(16, np.float32))
    assert pose.joint_names[0] == "r_ankle" and len(pose.as_dict()["keypoints"]) == 16


def test_crops_sample_the_image_at_the_crop_pixels_centres():
    # Bilinear interpolation reproduces a linear ramp exactly: pixel (i, j) holds j in red and i in
    # green, so the value at continuous point (x, y) is (x - 0.5, y - 0.5), and each crop pixel must
    # hold it at the image point its centre maps to.
    height, width = 90, 120
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
    box = (30.0, 20.0, 70.0, 60.0)  # its crop, [25, 75) x [15, 65), lies inside the image
    centre, side = person_square(box)
    sampled = crop(torch.from_numpy(ramp), crop_matrix(centre, side / 200, 32), 32).numpy() * 255
    centres = np.mgrid[0:32, 0:32][::-1].transpose(1, 2, 0) + 0.5  # (x, y) of each crop pixel's centre
    expected = crop_to_image(centres, centre, side, size=32) - 0.5
    np.testing.assert_allclose(sampled[..., :2], expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize("box", [(8.0, 4.0, 59.2, 55.2), (20.0, 16.0, 96.0, 96.0)])
def test_the_flip_test_of_a_mirror_exact_model_changes_nothing(box):
    image = np.zeros((96, 112, 3), np.uint8)
    image[40:44, 28:32, 0] = 255  # one bright block, off centre so a mirroring slip moves it
    plain = fasthg.PoseEstimator(BrightCells(), input_size=INPUT_SIZE)(image, box)
    flipped = fasthg.PoseEstimator(BrightCells(), input_size=INPUT_SIZE, flip_test=True)(image, box)
    np.testing.assert_array_equal(flipped.keypoints, plain.keypoints)
    np.testing.assert_allclose(flipped.confidence, plain.confidence, rtol=1e-6, atol=0)  # sums in mirrored order


def test_a_block_is_found_where_it_is():
    # A 64x64 image is its own crop, pixel for pixel; the block at x 28..31, y 36..39 fills
    # heatmap pixel (7, 9), which princeton's decoding reads as (7.25, 9.25).
    image = np.zeros((64, 64, 3), np.uint8)
    image[36:40, 28:32, 0] = 255
    pose = fasthg.PoseEstimator(BrightCells(), input_size=INPUT_SIZE)(image)
    np.testing.assert_array_equal(pose.keypoints, np.broadcast_to([29.0, 37.0], (16, 2)))
    np.testing.assert_array_equal(pose.confidence, np.ones(16, np.float32))


@pytest.fixture(scope="module")
def estimator():
    return fasthg.PoseEstimator(tiny_posenet(), input_size=INPUT_SIZE, device="cpu")


def test_grayscale_rgba_and_torch_images_give_the_rgb_result(estimator):
    rgb = np.random.default_rng(0).integers(0, 256, (70, 50, 3), dtype=np.uint8)
    gray = rgb[..., 1]
    variants = [rgb, np.dstack([rgb, np.full((70, 50), 7, np.uint8)]), torch.from_numpy(rgb),
                gray, gray[..., None], np.dstack([gray] * 3)]
    poses = [pose.keypoints for pose in estimator.batch(variants)]  # one forward pass
    for keypoints in poses[1:3]:
        np.testing.assert_array_equal(keypoints, poses[0])
    for keypoints in poses[3:5]:
        np.testing.assert_array_equal(keypoints, poses[5])
    assert not np.array_equal(poses[0], poses[5])  # the colour image is not read as its gray version


def test_a_batch_equals_its_images_one_by_one(estimator):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((64, 64, 3), (40, 90, 3), (100, 30, 3))]
    boxes = [None, (5, 5, 60, 35), (0, 10, 30, 90)]
    batched = estimator.batch(images, boxes)
    for pose, image, box in zip(batched, images, boxes):
        single = estimator(image, box)
        np.testing.assert_allclose(pose.keypoints, single.keypoints, rtol=0, atol=1e-6)
    assert estimator.batch([]) == []


def test_a_checkpoint_path_and_its_model_give_the_same_poses(tmp_path):
    model = tiny_posenet()
    paths = write_checkpoints(str(tmp_path), model.state_dict())
    image = np.random.default_rng(2).integers(0, 256, (80, 60, 3), dtype=np.uint8)
    from_model = fasthg.PoseEstimator(model, input_size=INPUT_SIZE)(image)
    from_file = fasthg.PoseEstimator(paths["princeton"], device="cpu", input_size=INPUT_SIZE)(image)
    np.testing.assert_allclose(from_file.keypoints, from_model.keypoints, rtol=0, atol=1e-6)


def test_synthetic_weights_warn_that_they_are(tmp_path):
    with pytest.warns(SyntheticWeightsWarning, match="not on photos"):
        estimator = fasthg.PoseEstimator(fasthg_checkpoint(tiny_posenet().state_dict()), device="cpu")
    assert estimator.input_size == INPUT_SIZE  # from the run's config


@pytest.mark.parametrize("image, error, message", [
    ([[1, 2], [3, 4]], TypeError, r"images\[0\]: expected a NumPy array or a torch tensor"),
    (np.zeros((8, 8, 3), np.float32), TypeError, r"images\[0\]: expected uint8 pixels"),
    (np.zeros((3, 8, 8), np.uint8), ValueError, r"images\[0\]: expected shape .* got \(3, 8, 8\) \(a CHW tensor\?"),
    (np.zeros((0, 8, 3), np.uint8), ValueError, r"images\[0\]: expected a non-empty image"),
])
def test_bad_images(estimator, image, error, message):
    with pytest.raises(error, match=message):
        estimator(image)


@pytest.mark.parametrize("box, message", [
    ((10, 10, 5, 20), r"boxes\[0\]: expected finite x0 < x1 and y0 < y1"),
    ((0, 0, float("nan"), 5), r"boxes\[0\]: expected finite"),
    ((1, 2, 3), r"boxes\[0\]: expected four numbers"),
    ((60, 10, 80, 20), r"boxes\[0\]: \(60.0, 10.0, 80.0, 20.0\) lies outside the 50x40 image"),
    ((-20, -20, 0, 0), r"lies outside the 50x40 image"),
])
def test_bad_boxes(estimator, box, message):
    with pytest.raises(ValueError, match=message):
        estimator(np.zeros((40, 50, 3), np.uint8), box)


def test_bad_arguments():
    model = tiny_posenet()
    with pytest.raises(ValueError, match="amp: expected one of auto, off, bf16, fp16"):
        fasthg.PoseEstimator(model, amp="yes")
    with pytest.raises(ValueError, match="input_size: expected a multiple of 64"):
        fasthg.PoseEstimator(model, input_size=100)
    with pytest.raises(ValueError, match="checkpoint_or_model: a Linear is not a PoseNet"):
        fasthg.PoseEstimator(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="flip_pairs: a flip test of 5 joints needs"):
        fasthg.PoseEstimator(fasthg.reference.PoseNet(1, 4, 5), flip_test=True)
    with pytest.raises(ValueError, match=r"boxes: expected one box \(or None\) per image, 2, got 1"):
        fasthg.PoseEstimator(model).batch([np.zeros((8, 8, 3), np.uint8)] * 2, [None])
