"""Arguments of the heatmap ops: their checks, their normal form, and the kernel launch.

Normal form, shared by the torch path and the kernels so that both compute the same numbers:
keypoints float32 (B, K, 2), visible a bool (B, K) tensor (numbers count as visible above 0.5,
mmpose's threshold) or None, sigma rounded to float32 (what the kernels receive).
"""
import numpy
import torch

from ...kernels import registry
from ..launch import launch_config
from ..validate import check_choice, check_nonempty, check_positive, check_same_device, check_tensor
from .torch_targets import STYLE_IDS, STYLES

VISIBLE_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                  torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_map_size(size):
    """(H, W) as two ints >= 1."""
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"size: expected a pair (H, W) of ints, got {size!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise TypeError(f"size: expected a pair (H, W) of ints, got {size!r}")
    if min(size) < 1:
        raise ValueError(f"size: expected H and W >= 1, got {tuple(size)}")
    return tuple(size)


def check_targets(keypoints, visible, sigma, style):
    """Checks the arguments every target-rendering op takes; returns them in normal form
    (keypoints, visible, sigma)."""
    check_tensor("keypoints", keypoints, 3, layout="(B, K, 2) x, y in heatmap pixels")
    if keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints: expected shape (B, K, 2) x, y in heatmap pixels, got {tuple(keypoints.shape)}")
    check_nonempty("keypoints", keypoints)
    if visible is not None:
        check_tensor("visible", visible, 2, dtypes=VISIBLE_DTYPES, layout="(B, K)")
        if visible.shape != keypoints.shape[:2]:
            raise ValueError(f"visible: expected shape (B, K) = {tuple(keypoints.shape[:2])} like keypoints, "
                             f"got {tuple(visible.shape)}")
        check_same_device(keypoints=keypoints, visible=visible)
        visible = visible if visible.dtype == torch.bool else visible > 0.5
    check_positive("sigma", sigma)
    check_choice("style", style, STYLES)
    sigma = float(numpy.float32(sigma))
    return keypoints.detach().float().contiguous(), visible, sigma


def visible_arguments(visible, like):
    """(pointer tensor, has_visible flag) of the kernels' visible_ptr: bool bytes, or an unread placeholder."""
    if visible is None:
        return torch.empty(0, dtype=torch.uint8, device=like.device), 0
    return visible.contiguous().view(torch.uint8), 1


def launch(name, style, dtype, grid, **arguments):
    """Launches kernel ``name`` in its registry configuration for ``dtype`` and ``style`` on the
    device of its tensor ``arguments``, each passed by the kernel's parameter name
    (:func:`fasthg.ops.launch.launch_config` checks they are exactly the ones it takes); ``grid``
    maps the configuration's constexprs to the launch grid."""
    device = next(value.device for value in arguments.values() if isinstance(value, torch.Tensor))
    config = registry.lookup(name, dtype, device, STYLE=STYLE_IDS[style])
    launch_config(config, grid, **arguments)
