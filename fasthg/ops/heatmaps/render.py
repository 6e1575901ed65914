"""``fasthg.ops.render_heatmaps``: Gaussian heatmap targets on the keypoints' device, in one launch.

A ``torch.library`` custom op (``fasthg::render_heatmaps``) over one program per (joint, pixel
block), with a fake implementation; the torch path renders every joint at once by broadcasting.
Keypoints are not differentiated (the patch styles are piecewise constant in them).
"""
from typing import Optional

import torch
import triton

from ... import dispatch
from ..validate import check_int32_addressable
from .arguments import check_map_size, check_targets, launch, visible_arguments
from .torch_targets import gaussian_targets

KERNEL_LAUNCHES = {"forward": 1}


@torch.library.custom_op("fasthg::render_heatmaps", mutates_args=())
def _render_heatmaps(keypoints: torch.Tensor, visible: Optional[torch.Tensor], height: int, width: int,
                     sigma: float, style: str) -> torch.Tensor:
    batch, joints, _ = keypoints.shape
    out = torch.empty((batch, joints, height, width), dtype=torch.float32, device=keypoints.device)
    visible, has_visible = visible_arguments(visible, keypoints)
    launch("render_heatmaps", style, torch.float32,
           lambda meta: (batch * joints, triton.cdiv(height * width, meta["BLOCK_HW"])),
           keypoints_ptr=keypoints, visible_ptr=visible, out_ptr=out, has_visible=has_visible,
           height=height, width=width, sigma=sigma)
    return out


@_render_heatmaps.register_fake
def _(keypoints, visible, height, width, sigma, style):
    return keypoints.new_empty((keypoints.shape[0], keypoints.shape[1], height, width))


def render_heatmaps(keypoints: torch.Tensor, visible: Optional[torch.Tensor] = None, size: tuple[int, int] = (64, 64),
                    sigma: float = 1.0, style: str = "princeton") -> torch.Tensor:
    """Gaussian heatmaps (B, K, H, W) float32 of keypoints (B, K, 2) x, y in heatmap pixels.

    ``visible`` (B, K): bool, or numbers visible above 0.5; None means all visible. ``size`` is
    (H, W); ``style`` one of princeton, bearpaw, mmpose, unbiased (docs/conventions.md: centre,
    support, and which joints are dropped, as each project computes them). Invisible, dropped and NaN or
    infinite joints get an all-zero map. ``sigma`` is rounded to float32.
    """
    height, width = check_map_size(size)
    keypoints, visible, sigma = check_targets(keypoints, visible, sigma, style)
    check_int32_addressable("size", (*keypoints.shape[:2], height, width))
    if dispatch.runs_fused(keypoints):
        return _render_heatmaps(keypoints, visible, height, width, sigma, style)
    return gaussian_targets(keypoints, visible, (height, width), sigma, style)[0]
