"""The 16 MPII joints: their order, names, left-right flip pairs and the bones drawn between them.

Every dataset, metric and drawing in fasthg uses this order (docs/conventions.md). "Right" is the
person's right, which is on the image's left for a person facing the camera.
"""

JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)

# FLIP_PAIRS[j] is the joint that j becomes in a mirrored image: indexing a per-joint array of
# the mirrored image with it restores the MPII order.
FLIP_PAIRS = (5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10)

PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9

# Bones as (joint, joint, side): side is "right", "left" or "centre", which drawings colour apart.
BONES = (
    (0, 1, "right"), (1, 2, "right"), (2, 6, "right"),
    (5, 4, "left"), (4, 3, "left"), (3, 6, "left"),
    (6, 7, "centre"), (7, 8, "centre"), (8, 9, "centre"),
    (10, 11, "right"), (11, 12, "right"), (12, 7, "right"),
    (15, 14, "left"), (14, 13, "left"), (13, 7, "left"),
)
