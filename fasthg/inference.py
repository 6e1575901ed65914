"""Running a PoseNet on crops: last-stack heatmaps (optionally flip-tested) and keypoints mapped
from crop pixels back to the original image."""
from . import ops
from .joints import FLIP_PAIRS
from .precision import autocast


def model_input(images, device):
    """uint8 images (B, H, W, 3) as PoseNet's input: float32 in [0, 1] on ``device``, NHWC."""
    return images.to(device, non_blocking=True).float().div_(255)


def run_model(model, inputs, amp_dtype=None):
    """Every stack's heatmaps (B, S, K, h, w) in float32."""
    with autocast(inputs.device, amp_dtype):
        return model(inputs).float()


def flip_tested(model, inputs, heatmaps, amp_dtype=None, flip_pairs=FLIP_PAIRS):
    """``heatmaps`` (B, K, h, w) of ``inputs`` merged with those of the mirrored inputs, joint j of
    the mirror image being joint ``flip_pairs[j]`` (MPII's pairs by default)."""
    mirrored = run_model(model, inputs.flip(2), amp_dtype)[:, -1]
    return ops.flip_merge_heatmaps(heatmaps, mirrored, flip_pairs)


def to_original(points, matrices):
    """Points (B, K, 2) through per-item affine matrices (B, 2, 3)."""
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]
