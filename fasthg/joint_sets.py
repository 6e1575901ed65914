"""Joint sets: which joints a model predicts, as one value that datasets, metrics, flip tests and
drawings take instead of assuming MPII's 16.

A :class:`JointSet` holds the joints' names in channel order, their left-right mirror pairs,
the bones drawn between them, COCO's per-joint OKS sigmas where the set has them, and the joints
the benchmark's PCKh mean leaves out. Two are built in: :data:`MPII_16` (fasthg/joints.py,
docs/conventions.md) and :data:`COCO_17` (COCO's person keypoints, in the order of its
``person_keypoints_*.json`` files). A PoseNet predicting a set has ``oup_dim == len(joint_set)``.
"""
from dataclasses import dataclass

from .errors import InvalidValueError
from .joints import BONES, FLIP_PAIRS, JOINT_NAMES, PELVIS, THORAX

SIDES = ("right", "left", "centre")


@dataclass(frozen=True)
class JointSet:
    """K joints: ``names`` (K,) in channel order; ``flip_pairs`` (K,), joint j of a mirrored image
    is joint ``flip_pairs[j]`` (an involution: pairs swap, centre joints map to themselves);
    ``bones``, (joint, joint, side) with side one of :data:`SIDES` (the person's right, left or
    centre, coloured apart in drawings); ``oks_sigmas`` (K,) or None, the per-joint constants
    k_j of COCO's object keypoint similarity exp(-d_j^2 / (2 s^2 k_j^2)) (s^2 the object's area);
    ``pckh_excluded``, joints left out of the benchmark's PCKh means."""

    name: str
    names: tuple
    flip_pairs: tuple
    bones: tuple
    oks_sigmas: tuple | None = None
    pckh_excluded: tuple = ()

    def __post_init__(self):
        count = len(self.names)
        if len(set(self.names)) != count or count == 0:
            raise ValueError(f"names: expected distinct joint names, got {self.names}")
        pairs = tuple(self.flip_pairs)
        if sorted(pairs) != list(range(count)) or any(pairs[pairs[j]] != j for j in range(count)):
            raise ValueError(f"flip_pairs: expected a permutation of the {count} joints that is its own inverse, got {pairs}")
        for first, second, side in self.bones:
            if not (0 <= first < count and 0 <= second < count) or side not in SIDES:
                raise ValueError(f"bones: expected (joint, joint, side) with joints < {count} and side in {SIDES}, "
                                 f"got {(first, second, side)}")
        if self.oks_sigmas is not None and len(self.oks_sigmas) != count:
            raise ValueError(f"oks_sigmas: expected {count} sigmas, one per joint, got {len(self.oks_sigmas)}")
        if any(not 0 <= j < count for j in self.pckh_excluded):
            raise ValueError(f"pckh_excluded: expected joints < {count}, got {self.pckh_excluded}")

    def __len__(self):
        return len(self.names)


MPII_16 = JointSet("mpii", JOINT_NAMES, FLIP_PAIRS, BONES, pckh_excluded=(PELVIS, THORAX))

COCO_17 = JointSet(
    "coco",
    ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
     "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
     "left_knee", "right_knee", "left_ankle", "right_ankle"),
    (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
    ((15, 13, "left"), (13, 11, "left"), (16, 14, "right"), (14, 12, "right"), (11, 12, "centre"),
     (5, 11, "left"), (6, 12, "right"), (5, 6, "centre"), (5, 7, "left"), (7, 9, "left"),
     (6, 8, "right"), (8, 10, "right"), (1, 2, "centre"), (0, 1, "left"), (0, 2, "right"),
     (1, 3, "left"), (2, 4, "right"), (3, 5, "left"), (4, 6, "right")),
    # COCO's published sigmas: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
    (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
     0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
)

JOINT_SETS = {joint_set.name: joint_set for joint_set in (MPII_16, COCO_17)}


def joint_set_for_channels(channels):
    """The built-in joint set of ``channels`` joints (16: MPII, 17: COCO), None for any other count."""
    return next((joint_set for joint_set in JOINT_SETS.values() if len(joint_set) == channels), None)


def check_model_joints(joint_set, oup_dim, source):
    """Raises InvalidValueError (one line) when a model of ``oup_dim`` heatmaps, read from
    ``source``, cannot predict ``joint_set``."""
    if oup_dim != len(joint_set):
        raise InvalidValueError(f"--checkpoint: {source} predicts {oup_dim} joints, the {joint_set.name} joint set "
                                f"has {len(joint_set)}: use weights trained on that dataset")
