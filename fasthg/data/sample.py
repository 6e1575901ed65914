"""The one item format every fasthg dataset yields, so training and evaluation never ask which dataset it is."""
import numpy as np


def make_sample(index, image, keypoints, visible, original_keypoints, annotated, normalize, to_original):
    """One training or evaluation item as a dict of NumPy arrays (the default collate stacks them).

    image: (S, S, 3) uint8 RGB crop, the model's input; keypoints: (16, 2) x, y in crop pixels,
    the targets' positions; visible: (16,) joints that get a target. For evaluation, in the
    original image's frame: original_keypoints (16, 2), annotated (16,) joints that PCKh counts,
    normalize the head size, and to_original (2, 3) the affine map from crop to original pixels.
    """
    return {
        "index": index,
        "image": np.ascontiguousarray(image, dtype=np.uint8),
        "keypoints": np.asarray(keypoints, dtype=np.float32),
        "visible": np.asarray(visible, dtype=bool),
        "original_keypoints": np.asarray(original_keypoints, dtype=np.float32),
        "annotated": np.asarray(annotated, dtype=bool),
        "normalize": np.float32(normalize),
        "to_original": np.asarray(to_original, dtype=np.float32),
    }
