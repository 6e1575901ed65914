"""Plain-PyTorch reference implementations: the oracle for every fasthg test.

Nothing here imports the rest of fasthg, so a bug in a fused kernel can never leak into the
answer it is checked against.
"""
from .heatmaps import (
    decode_heatmaps, flip_merge_heatmaps, heatmap_loss, render_heatmaps, render_targets,
    to_image_coordinates,
)
from .model import Conv, Hourglass, Merge, Pool, PoseNet, Residual, StackedHourglass


def upsample_add(low, skip):
    """skip + nearest x2 upsampling of low: out[n, c, h, w] = skip[n, c, h, w] + low[n, c, h // 2, w // 2]."""
    return skip + low.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
