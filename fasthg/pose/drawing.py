"""Skeletons drawn over images, and images as PNG bytes: what prediction, videos and a training
run's pictures draw with."""
import numpy as np

from ..extras import LazyModule
from ..joint_sets import joint_set_for_channels

cv2 = LazyModule("cv2")

_SIDE_COLOURS = {"right": (255, 64, 64), "left": (64, 160, 255), "centre": (255, 220, 0)}  # RGB


def draw_skeleton(image, keypoints, confidence=None, min_confidence=0.0, thickness=None, joint_set=None):
    """A copy of the RGB uint8 ``image`` with the bones of ``joint_set`` between ``keypoints`` (K, 2)
    drawn on it (default: the built-in set of K joints; joints only for another K).

    Bones of the person's right side are red, left blue, centre yellow; a bone is left out when
    either end is NaN or its ``confidence`` is below ``min_confidence``.
    """
    joint_set = joint_set or joint_set_for_channels(len(keypoints))
    canvas = np.ascontiguousarray(image).copy()
    thickness = thickness or max(1, round(min(canvas.shape[:2]) / 100))
    shown = np.all(np.isfinite(keypoints), axis=-1)
    if confidence is not None:
        shown &= np.asarray(confidence) >= min_confidence
    for first, second, side in joint_set.bones if joint_set else ():
        if shown[first] and shown[second]:
            start = tuple(int(round(v)) for v in keypoints[first])
            end = tuple(int(round(v)) for v in keypoints[second])
            cv2.line(canvas, start, end, _SIDE_COLOURS[side], thickness, cv2.LINE_AA)
    for joint in np.flatnonzero(shown):
        cv2.circle(canvas, tuple(int(round(v)) for v in keypoints[joint]), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return canvas


def encode_png(image):
    """PNG bytes of an RGB uint8 image."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))  # OpenCV wants BGR
    if not ok:
        raise ValueError(f"image: could not encode an array of shape {image.shape} as PNG")
    return data.tobytes()
