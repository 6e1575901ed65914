"""``fasthg.ops.heatmap_loss``: the MSE of every stack's heatmaps against Gaussian targets that
are computed inside the kernel and never stored.

The custom op ``fasthg::heatmap_loss`` returns the per-stack losses (S,) and, when preds need a
gradient, d(per-stack loss)/d preds, written by the same launch that reads preds once. Its
registered backward only scales that gradient by the incoming one per stack. Formulas: the
princeton and the visibility-weighted forms of ``fasthg/reference/heatmaps.py``.
"""
from typing import Optional

import torch

from ... import dispatch
from ..launch import accumulation_dtype
from ..validate import check_int32_addressable, check_nonempty, check_same_device, check_tensor
from .arguments import check_targets, launch, visible_arguments
from .torch_targets import gaussian_targets

KERNEL_LAUNCHES = {"forward": 1}  # the backward scales the stored gradient: one aten multiply


def _loss_scale(weighted, count):
    """Per-stack loss = scale * sum of (w (pred - T))^2 over the stack's B K H W = count pixels."""
    return (0.5 if weighted else 1.0) / count


@torch.library.custom_op("fasthg::heatmap_loss", mutates_args=())
def _heatmap_loss(preds: torch.Tensor, keypoints: torch.Tensor, visible: Optional[torch.Tensor], sigma: float,
                  style: str, weighted: bool, store_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    batch, stacks, joints, height, width = preds.shape
    preds = preds.contiguous()
    partial = torch.empty((batch * joints, stacks), dtype=accumulation_dtype(preds.dtype), device=preds.device)
    grad = torch.empty_like(preds) if store_grad else preds.new_empty(0)
    visible, has_visible = visible_arguments(visible, preds)
    launch("heatmap_loss", style, preds.dtype, lambda meta: (batch * joints, stacks),
           preds_ptr=preds, keypoints_ptr=keypoints, visible_ptr=visible, grad_ptr=grad, partial_ptr=partial,
           has_visible=has_visible, store_grad=int(store_grad), weighted=int(weighted),
           stacks=stacks, joints=joints, height=height, width=width, sigma=sigma)
    return partial.sum(dim=0) * _loss_scale(weighted, batch * joints * height * width), grad


@_heatmap_loss.register_fake
def _(preds, keypoints, visible, sigma, style, weighted, store_grad):
    losses = preds.new_empty((preds.shape[1],), dtype=accumulation_dtype(preds.dtype))
    return losses, torch.empty_like(preds) if store_grad else preds.new_empty(0)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.set_materialize_grads(False)  # no zeros for the gradient output, which nothing differentiates


def _backward(ctx, grad_losses, _):
    (grad,) = ctx.saved_tensors
    scaled = None if grad_losses is None else grad * grad_losses.to(grad.dtype).view(1, -1, 1, 1, 1)
    return scaled, None, None, None, None, None, None


_heatmap_loss.register_autograd(_backward, setup_context=_setup_context)


def _torch_per_stack(preds, keypoints, visible, sigma, style, weighted):
    batch, stacks, joints, height, width = preds.shape
    dtype = accumulation_dtype(preds.dtype)
    targets, kept = gaussian_targets(keypoints, visible, (height, width), sigma, style, dtype)
    diff = preds.to(dtype) - targets[:, None]
    if weighted:
        diff = diff * kept[:, None, :, None, None]
    return diff.square().sum(dim=(0, 2, 3, 4)) * _loss_scale(weighted, batch * joints * height * width)


def heatmap_loss(preds: torch.Tensor, keypoints: torch.Tensor, visible: Optional[torch.Tensor] = None, sigma: float = 1.0,
                 style: str = "princeton", weighted: bool = False, *, per_stack: bool = False) -> torch.Tensor:
    """The heatmap loss of every stack's predictions preds (B, S, K, H, W) against Gaussian
    targets of ``keypoints`` (B, K, 2) (x, y in heatmap pixels; see :func:`render_heatmaps` for
    ``visible``, ``sigma`` and ``style``).

    ``weighted=False`` (princeton): L_s = mean over (B, K, H, W) of (pred - T)^2, loss = mean_s L_s.
    ``weighted=True`` (bearpaw/mmpose target weights): L_s = 0.5 * mean of w^2 (pred - T)^2 with
    w = 1 for kept joints and 0 for invisible or dropped ones, loss = sum_s L_s.
    Returns the loss (a 0-d tensor, float32; float64 for float64 preds), or with
    ``per_stack=True`` the pair (loss, L (S,)) for logging.
    """
    check_tensor("preds", preds, 5, layout="(B, S, K, H, W)")
    check_nonempty("preds", preds)
    keypoints, visible, sigma = check_targets(keypoints, visible, sigma, style)
    check_same_device(preds=preds, keypoints=keypoints)
    if preds.shape[0] != keypoints.shape[0] or preds.shape[2] != keypoints.shape[1]:
        raise ValueError(f"preds: expected shape (B, S, K, H, W) with (B, K) = {tuple(keypoints.shape[:2])} "
                         f"like keypoints, got {tuple(preds.shape)}")
    if not isinstance(weighted, bool):
        raise TypeError(f"weighted: expected a bool, got {type(weighted).__name__}")
    check_int32_addressable("preds", preds.shape)
    if dispatch.runs_fused(preds):
        store_grad = preds.requires_grad and torch.is_grad_enabled()
        losses = _heatmap_loss(preds, keypoints, visible, sigma, style, weighted, store_grad)[0]
    else:
        losses = _torch_per_stack(preds, keypoints, visible, sigma, style, weighted)
    loss = losses.sum() if weighted else losses.mean()
    return (loss, losses) if per_stack else loss
