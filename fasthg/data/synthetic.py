"""A procedurally generated pose dataset: articulated figures in MPII joint order, drawn on the fly.

Each sample is a person-like figure facing the camera (its right side on the image's left, as
for MPII's people seen from the front) with a random pose (torso lean, head tilt, hip, knee,
shoulder and elbow angles, foreshortened limbs, a body turned away from the camera by narrowing
hips and shoulders), size, position, rotation, limb thickness and colours, over a background of
gradients, noise and clutter that includes limb-like bars, sometimes partly hidden by occluders.
Figures are sized like MPII's people in their 200·scale crops (MPII's scale follows the head size:
its PCKh normaliser is 0.1 of the crop side throughout valid.h5, its median torso 0.23), so PCKh
thresholds mean what they mean on MPII; joints pushed out of the crop are unannotated, as there.

A sample is a pure function of (seed, split, epoch, index): the same on every machine, process
and data-loader worker, and fresh poses every training epoch (:meth:`SyntheticPoses.set_epoch`).
"""
import math

import numpy as np
import torch

from ..extras import LazyModule
from ..joint_sets import MPII_16
from ..joints import HEAD_TOP, NUM_JOINTS, PELVIS, THORAX, UPPER_NECK
from .transforms import inside
from .sample import make_sample

cv2 = LazyModule("cv2")

_SPLITS = {"train": 0, "val": 1}
_SHIFT = 4  # OpenCV draws at 1/16-pixel precision with coordinates scaled by 2**_SHIFT

# Limb lengths as fractions of the crop side at figure scale 1; the head gives a normaliser of 0.1.
_LENGTHS = {"torso": 0.23, "neck": 0.05, "head": 0.133, "hip": 0.045, "shoulder": 0.085,
            "thigh": 0.2, "shin": 0.2, "upper_arm": 0.14, "forearm": 0.13}
# MPII's normaliser (0.6 x head-box diagonal) is 0.75 x the neck-to-head-top length (median over valid.h5).
_NORMALIZE_PER_HEAD_LENGTH = 0.75


def _direction(angle):
    """Unit vector at ``angle`` radians from straight down (+y), turning towards +x."""
    return np.array([math.sin(angle), math.cos(angle)])


class _Figure:
    """Joint positions of one random figure in crop pixels, and the sizes it is drawn with."""

    def __init__(self, rng, size):
        scale = rng.uniform(0.85, 1.15) * size
        lengths = {name: value * scale * rng.uniform(0.9, 1.1) for name, value in _LENGTHS.items()}
        for limb in ("thigh", "shin", "upper_arm", "forearm"):
            if rng.random() < 0.3:  # pointing towards or away from the camera
                lengths[limb] *= rng.uniform(0.45, 1.0)
        turn = rng.uniform(0.35, 1.0)  # hips and shoulders narrow as the body turns sideways
        joints = np.zeros((NUM_JOINTS, 2))
        lean, tilt = rng.normal(0, 0.2), rng.normal(0, 0.25)
        up = math.pi + lean
        joints[THORAX] = lengths["torso"] * _direction(up)  # the pelvis stays at the origin
        joints[UPPER_NECK] = joints[THORAX] + lengths["neck"] * _direction(up + tilt / 2)
        joints[HEAD_TOP] = joints[UPPER_NECK] + lengths["head"] * _direction(up + tilt)
        # The person's right is the image's left (-x) when facing the camera; "outward" angles
        # turn a limb away from the body's midline on its own side.
        across = _direction(lean + math.pi / 2)
        for side, (hip, knee, ankle, shoulder, elbow, wrist) in ((-1, (2, 1, 0, 12, 11, 10)), (1, (3, 4, 5, 13, 14, 15))):
            joints[hip] = side * lengths["hip"] * turn * across
            joints[shoulder] = joints[THORAX] + side * lengths["shoulder"] * turn * across
            leg = rng.uniform(-0.35, 1.2)
            knee_bend = rng.uniform(0, 2.0) * rng.choice((-1, 1), p=(0.3, 0.7))
            joints[knee] = joints[hip] + lengths["thigh"] * _direction(lean + side * leg)
            joints[ankle] = joints[knee] + lengths["shin"] * _direction(lean + side * (leg - knee_bend))
            arm = rng.uniform(-0.5, 3.0)
            elbow_bend = rng.uniform(-2.5, 2.5)
            joints[elbow] = joints[shoulder] + lengths["upper_arm"] * _direction(lean + side * arm)
            joints[wrist] = joints[elbow] + lengths["forearm"] * _direction(lean + side * (arm + elbow_bend))
        rotation = math.radians(rng.uniform(-40, 40))
        cos, sin = math.cos(rotation), math.sin(rotation)
        joints = joints @ np.array([[cos, -sin], [sin, cos]])
        middle = (joints.min(0) + joints.max(0)) / 2
        shift = np.clip(rng.normal(0, 0.06 * size, 2), -0.12 * size, 0.12 * size)
        self.joints = joints - middle + size / 2 + shift
        self.head_length = lengths["head"]
        self.leg_thickness = rng.uniform(0.035, 0.06) * scale
        self.arm_thickness = self.leg_thickness * rng.uniform(0.6, 0.85)


def _random_colour(rng):
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _point(xy):
    """Continuous coordinates as OpenCV's fixed-point pixel indices."""
    return tuple(int(round((c - 0.5) * (1 << _SHIFT))) for c in xy)


def _background(rng, size):
    """A two-colour gradient with low-frequency noise."""
    first, second = rng.integers(0, 256, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    mix = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None] + 0.5
    image = first + mix[..., None] * (second - first)
    noise = cv2.resize(rng.uniform(-40, 40, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _draw_shapes(rng, image, count, centre, extent):
    """``count`` random bars, rectangles and ellipses around ``centre`` (spread ``extent`` pixels)."""
    size = image.shape[0]
    for _ in range(count):
        colour = _random_colour(rng)
        middle = centre + rng.uniform(-extent, extent, 2)
        kind = rng.integers(3)
        if kind == 0:  # a bar as thick as a limb: the model must tell limbs by their joints
            offset = _direction(rng.uniform(0, 2 * math.pi)) * rng.uniform(0.05, 0.25) * size
            thickness = max(1, int(rng.uniform(0.01, 0.06) * size))
            cv2.line(image, _point(middle - offset), _point(middle + offset), colour, thickness, cv2.LINE_AA, _SHIFT)
        elif kind == 1:
            half = rng.uniform(0.03, 0.15, 2) * size
            cv2.rectangle(image, _point(middle - half), _point(middle + half), colour, -1, cv2.LINE_AA, _SHIFT)
        else:
            axes = tuple(int(a * (1 << _SHIFT)) for a in rng.uniform(0.02, 0.12, 2) * size)
            cv2.ellipse(image, _point(middle), axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)


def _draw_figure(rng, image, figure):
    joints = figure.joints
    right, left, torso, skin = (_random_colour(rng) for _ in range(4))
    outline = rng.random() < 0.5
    legs = {"right": ((0, 1), (1, 2)), "left": ((5, 4), (4, 3))}
    arms = {"right": ((10, 11), (11, 12)), "left": ((15, 14), (14, 13))}
    ends = {"right": (1, 0, 10), "left": (4, 5, 15)}  # knee, ankle, wrist
    colours = {"right": right, "left": left}
    leg_width, arm_width = max(1, int(figure.leg_thickness)), max(1, int(figure.arm_thickness))

    def bar(start, end, colour, width):
        if outline:
            cv2.line(image, _point(start), _point(end), (0, 0, 0), width + 2, cv2.LINE_AA, _SHIFT)
        cv2.line(image, _point(start), _point(end), colour, width, cv2.LINE_AA, _SHIFT)

    def limbs(side):
        for bones, width in ((legs[side], leg_width), (arms[side], arm_width)):
            for a, b in bones:
                bar(joints[a], joints[b], colours[side], width)
        knee, ankle, wrist = ends[side]
        # A foot across the end of the shin and a hand at the end of the forearm mark where the
        # limbs end, as real feet and hands do.
        shin = joints[ankle] - joints[knee]
        across = np.array([-shin[1], shin[0]]) * rng.choice((-1, 1)) / max(np.linalg.norm(shin), 1e-6)
        bar(joints[ankle], joints[ankle] + across * 1.8 * figure.leg_thickness, colours[side], leg_width)
        hand = int(figure.arm_thickness * 0.8 * (1 << _SHIFT)) + (1 << _SHIFT)
        cv2.circle(image, _point(joints[wrist]), hand, skin, -1, cv2.LINE_AA, _SHIFT)

    back, front = ("right", "left") if rng.random() < 0.5 else ("left", "right")
    limbs(back)
    body = np.array([_point(joints[j]) for j in (12, 13, 3, 2)], dtype=np.int32)
    cv2.fillConvexPoly(image, body, torso, cv2.LINE_AA, _SHIFT)
    cv2.line(image, _point(joints[PELVIS]), _point(joints[THORAX]), torso, leg_width, cv2.LINE_AA, _SHIFT)
    limbs(front)
    cv2.line(image, _point(joints[THORAX]), _point(joints[UPPER_NECK]), skin, arm_width, cv2.LINE_AA, _SHIFT)
    head_centre = (joints[UPPER_NECK] + joints[HEAD_TOP]) / 2
    radius = int(figure.head_length * rng.uniform(0.4, 0.55) * (1 << _SHIFT))
    cv2.circle(image, _point(head_centre), radius, skin, -1, cv2.LINE_AA, _SHIFT)


def _finish(rng, image):
    """Camera-like blur and noise."""
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(0, 8)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


class SyntheticPoses(torch.utils.data.Dataset):
    """``length`` synthetic samples of ``size`` x ``size`` pixels for ``split`` "train" or "val".

    Items are the dicts of :func:`fasthg.data.sample.make_sample`; the crop is the whole image,
    so original and crop coordinates coincide.
    """

    joint_set = MPII_16

    def __init__(self, split, length, size=128, seed=0):
        if split not in _SPLITS:
            raise ValueError(f"split: expected one of {', '.join(map(repr, _SPLITS))}, got {split!r}")
        self.split, self.length, self.size, self.seed = split, length, size, seed
        self.epoch = 0

    def set_epoch(self, epoch):
        """Draws the training split's figures anew for ``epoch``; the validation split never changes."""
        self.epoch = epoch

    def __len__(self):
        return self.length

    def _rng(self, index):
        epoch = self.epoch if self.split == "train" else 0
        return np.random.default_rng([self.seed, _SPLITS[self.split], epoch, index])

    def keypoints(self, index):
        """Sample ``index``'s keypoints (16, 2) and which lie in the image, without drawing it."""
        figure = _Figure(self._rng(index), self.size)
        return figure.joints, inside(figure.joints, self.size)

    def __getitem__(self, index):
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = self._rng(index)
        figure = _Figure(rng, self.size)
        image = _background(rng, self.size)
        centre = figure.joints.mean(0)
        _draw_shapes(rng, image, rng.integers(2, 9), np.full(2, self.size / 2), self.size / 2)
        _draw_figure(rng, image, figure)
        if rng.random() < 0.4:
            _draw_shapes(rng, image, rng.integers(1, 3), centre, 0.3 * self.size)
        image = _finish(rng, image)
        annotated = inside(figure.joints, self.size)
        normalize = _NORMALIZE_PER_HEAD_LENGTH * np.linalg.norm(figure.joints[HEAD_TOP] - figure.joints[UPPER_NECK])
        return make_sample(index, image, figure.joints, annotated, figure.joints, annotated, normalize, np.eye(2, 3))
