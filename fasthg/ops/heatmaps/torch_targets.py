"""The four heatmap target styles, vectorised over every joint at once: the torch path of the
heatmap ops, computing what ``kernels/heatmap.py`` computes per program (same formulas: see that
module's docstring, and ``fasthg/reference/heatmaps.py`` for each project's own code shape).

Both axes are handled together (a trailing axis of 2: x, y), and the Gaussian is separable,
T(u, v) = gx(u) * gy(v) with g(t) = exp(-(t - c)^2 / (2 sigma^2)) inside the box and 0 outside,
so a map costs one multiply per pixel after O(B K (H + W)) work. The product differs from
exp of the summed exponent by an ulp or two; the kernels and the reference use the latter.
"""
import math

import torch

from ...kernels.heatmap import STYLES

STYLE_IDS = {name: index for index, name in enumerate(STYLES)}  # the kernels' STYLE constexpr
_FLUSH = -87.0  # exp(-87) is about float32's smallest normal number


def _boxes(p, size, sigma, style):
    """(centre, first, end, kept) per joint and axis; p (B, K, 2) float64, size (2,) = (W, H)."""
    trunc = torch.trunc
    if style == "princeton":
        c = trunc(p)
        first = trunc(c - (3 * sigma + 1))
        end = torch.minimum(trunc(c + (3 * sigma + 2)), first + math.ceil(6 * sigma + 3))
        return first + (3 * sigma + 1), first, end, (c >= 0) & (c < size)
    if style == "unbiased":
        return p, torch.zeros_like(p), size.expand_as(p), (p - 3 * sigma < size) & (p + (3 * sigma + 1) >= 0)
    q = trunc(p + 0.5) if style == "mmpose" else p
    first = trunc(q - 3 * sigma)
    br = trunc(q + (3 * sigma + 1))
    end = torch.minimum(br, first + math.ceil(6 * sigma + 1))
    return first + math.floor((6 * sigma + 1) / 2), first, end, (first < size) & (br >= 0)


def joint_boxes(keypoints, visible, size, sigma, style):
    """Per joint (B, K, 2 axes x, y): the Gaussian's centre and its box [first, end) in float64,
    and per joint (B, K) whether it is kept (its target weight). ``visible``: bool (B, K) or None."""
    height, width = size
    points = keypoints.double()
    finite = points.isfinite().all(dim=-1)
    points = points.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    # Copied without blocking: torch.tensor(..., device=cuda) would wait for the GPU's queued work.
    extent = torch.tensor([width, height], dtype=torch.float64).to(points.device, non_blocking=True)
    centre, first, end, kept = _boxes(points, extent, sigma, style)
    kept = kept.all(dim=-1) & finite
    if visible is not None:
        kept = kept & visible
    if style == "princeton":
        kept = kept & (points[..., 0] > 0)
    return centre, first, end, kept


def gaussian_targets(keypoints, visible, size, sigma, style, dtype=torch.float32):
    """(targets (B, K, H, W) in ``dtype``, kept (B, K) bool): gx(u) * gy(v) inside each kept
    joint's box, 0 elsewhere.

    Factors below exp(-87) are flushed to zero (the box narrowed to |t - c| < sqrt(87 * 2 sigma^2)),
    and exp only sees exponents >= -87: CPUs evaluate exp far more slowly on the way to underflow.
    The box is applied as a 0/1 factor from integer bounds, arithmetic being several times
    faster than comparisons on the CPU.
    """
    height, width = size
    centre, first, end, kept = joint_boxes(keypoints, visible, size, sigma, style)
    two_sigma_sq = float(torch.tensor(2 * sigma * sigma, dtype=torch.float64).to(dtype))
    reach = math.sqrt(-_FLUSH * two_sigma_sq)
    low = torch.maximum(first, torch.floor(centre - reach) + 1)  # integer pixels t with low <= t < high
    high = torch.where(kept[..., None], torch.minimum(end, torch.ceil(centre + reach)), low)
    centre, low, high = torch.stack((centre, low, high)).to(dtype)[..., None]
    t = torch.arange(max(height, width), dtype=dtype, device=keypoints.device)
    inside = (t - low + 1).clamp_(0, 1).mul_((high - t).clamp_(0, 1))
    d = t - centre  # u - cx, v - cy
    factors = (d * d).div_(-two_sigma_sq).clamp_(min=_FLUSH).exp_().mul_(inside)
    return factors[:, :, 1, :height, None] * factors[:, :, 0, None, :width], kept
