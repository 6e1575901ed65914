"""Heatmap targets, losses and decoding as each peer project computes them, one joint at a time.

Keypoints are (B, K, 2) x, y in heatmap pixels (pixel u covers [u, u + 1) and has the integer
coordinate u); maps are (B, K, H, W). Every style renders the unnormalised Gaussian
g(u, v) = exp(-((u - cx)^2 + (v - cy)^2) / (2 sigma^2)); they differ in the centre, the support
and which joints they drop (docs/conventions.md). Each function below follows its project's code
shape (a patch cut from a precomputed Gaussian and pasted at ``ul``), so the vectorised and the fused
implementations, which use a closed form instead, are checked against an independent formulation:

* princeton (princeton-vl/pytorch_stacked_hourglass ``GenerateHeatmap``): centre int(p) per axis;
  patch of 6 sigma + 3 pixels with its peak at 3 sigma + 1, pasted at int(int(p) - 3 sigma - 1),
  overlap by max. Dropped when x <= 0 or the truncated centre lies outside the map.
* bearpaw (bearpaw/pytorch-pose ``draw_labelmap``): patch of 6 sigma + 1 pixels, peak at its
  (6 sigma + 1) // 2, pasted at ul = int(p - 3 sigma) (truncation toward zero, so left of 3 sigma
  the centre is rounded up), assigned. Dropped (weight 0) when ul >= size or
  br = int(p + 3 sigma + 1) < 0 on either axis; a joint with br == 0 keeps weight 1 and an empty map.
* mmpose (open-mmlab/mmpose ``_msra_generate_target``): as bearpaw around mu = int(p + 0.5).
* unbiased (mmpose's ``unbiased_encoding``, DARK): the exact Gaussian around (x, y) over the
  whole map, dropped by the same 3 sigma box test on the unrounded position.

Every style also drops invisible joints (visible <= 0.5, mmpose's threshold) and, an fasthg
addition, NaN or infinite keypoints: the joint's map is all zero and its weight 0. One person
per sample, so the overlap rules (max, assign) never meet a second Gaussian in a channel.

Losses, over preds (B, S, K, H, W) from all S stacks against the targets T:

* princeton (``HeatmapLoss`` + ``calc_loss``): per sample mean over (K, H, W) of (pred - T)^2,
  averaged over batch and stacks: per stack L_s = mean_{b,k,h,w} (pred - T)^2, total = mean_s L_s.
* weighted (bearpaw's ``JointsMSELoss(use_target_weight=True)``, summed over stacks by its
  training loop): L_s = (1/K) sum_k 0.5 * MSE(pred_k * w_k, T_k * w_k)
  = 0.5 * mean_{b,k,h,w} w_bk^2 (pred - T)^2, total = sum_s L_s. w is the style's target weight.
  (mmpose 0.x dropped the 0.5: its loss is twice this one.)

Decoding (argmax, first maximum in row-major order, then a quarter pixel toward the higher neighbour):

* princeton (``HeatmapParser.adjust``): when the peak is > 0, each axis moves +0.25 if the next
  pixel is higher than the previous one (indices clamped to the map), else -0.25, then +0.5;
  a peak <= 0 is returned unmoved.
* bearpaw (``final_preds``, 1-based there): peak <= 0 gives -0.5; otherwise where
  0 < col < W - 1 and 0 < row < H - 1 both axes move 0.25 * sign(next - previous), then +0.5.
* mmpose (``keypoints_from_heatmaps``, default post-processing): peak <= 0 gives -1; otherwise
  where 1 < col < W - 1 and 1 < row < H - 1 both axes move 0.25 * sign(next - previous); no +0.5.

Written for clarity, not speed: plain loops over joints, Python floats (float64).
"""
import math

import torch

STYLES = ("princeton", "bearpaw", "mmpose", "unbiased")
DECODE_STYLES = ("princeton", "bearpaw", "mmpose")


def _gaussian_patch(size, peak, sigma):
    """A square patch exp(-((i - peak)^2 + (j - peak)^2) / (2 sigma^2)), i, j in arange(0, size)."""
    axis = torch.arange(0, size, 1, dtype=torch.float64)
    return torch.exp(-((axis[None, :] - peak) ** 2 + (axis[:, None] - peak) ** 2) / (2 * sigma ** 2))


def _paste(heatmap, patch, ul, br, overlap_max):
    """Pastes the part of ``patch`` (top-left at ``ul``, bottom-right bound ``br``) inside the map."""
    height, width = heatmap.shape
    patch_x = max(0, -ul[0]), min(br[0], width) - ul[0]
    patch_y = max(0, -ul[1]), min(br[1], height) - ul[1]
    map_x = max(0, ul[0]), min(br[0], width)
    map_y = max(0, ul[1]), min(br[1], height)
    region = heatmap[map_y[0]:map_y[1], map_x[0]:map_x[1]]
    cut = patch[patch_y[0]:patch_y[1], patch_x[0]:patch_x[1]]
    region.copy_(torch.maximum(region, cut) if overlap_max else cut)


def _princeton(heatmap, x, y, sigma):
    height, width = heatmap.shape
    if not x > 0:
        return 0.0
    cx, cy = int(x), int(y)
    if cx < 0 or cy < 0 or cx >= width or cy >= height:
        return 0.0
    ul = int(cx - 3 * sigma - 1), int(cy - 3 * sigma - 1)
    br = int(cx + 3 * sigma + 2), int(cy + 3 * sigma + 2)
    _paste(heatmap, _gaussian_patch(6 * sigma + 3, 3 * sigma + 1, sigma), ul, br, overlap_max=True)
    return 1.0


def _outside(ul, br, height, width):
    """The 3 sigma box test of bearpaw and mmpose: no part of the patch on the map."""
    return ul[0] >= width or ul[1] >= height or br[0] < 0 or br[1] < 0


def _patch_around(heatmap, x, y, sigma, overlap_max):
    """bearpaw's draw_labelmap (mmpose's MSRA branch is the same around a rounded centre)."""
    height, width = heatmap.shape
    ul = int(x - 3 * sigma), int(y - 3 * sigma)
    br = int(x + 3 * sigma + 1), int(y + 3 * sigma + 1)
    if _outside(ul, br, height, width):
        return 0.0
    size = 6 * sigma + 1
    _paste(heatmap, _gaussian_patch(size, size // 2, sigma), ul, br, overlap_max)
    return 1.0


def _bearpaw(heatmap, x, y, sigma):
    return _patch_around(heatmap, x, y, sigma, overlap_max=False)


def _mmpose(heatmap, x, y, sigma):
    return _patch_around(heatmap, int(x + 0.5), int(y + 0.5), sigma, overlap_max=True)


def _unbiased(heatmap, x, y, sigma):
    height, width = heatmap.shape
    if _outside((x - 3 * sigma, y - 3 * sigma), (x + 3 * sigma + 1, y + 3 * sigma + 1), height, width):
        return 0.0
    u = torch.arange(width, dtype=torch.float64)[None, :]
    v = torch.arange(height, dtype=torch.float64)[:, None]
    heatmap.copy_(torch.maximum(heatmap, torch.exp(-((u - x) ** 2 + (v - y) ** 2) / (2 * sigma ** 2))))
    return 1.0


_RENDER = {"princeton": _princeton, "bearpaw": _bearpaw, "mmpose": _mmpose, "unbiased": _unbiased}


def render_joint(x, y, visible, size, sigma, style):
    """(heatmap (H, W) float64, target weight 0.0 or 1.0) of one joint at (x, y), size = (H, W)."""
    heatmap = torch.zeros(size, dtype=torch.float64)
    if not visible or not (math.isfinite(x) and math.isfinite(y)):
        return heatmap, 0.0
    return heatmap, _RENDER[style](heatmap, x, y, sigma)


def _visible(visible, b, k):
    return True if visible is None else float(visible[b, k]) > 0.5


def render_targets(keypoints, visible=None, size=(64, 64), sigma=1.0, style="princeton", dtype=torch.float32):
    """(heatmaps (B, K, H, W) in ``dtype``, target weights (B, K) in ``dtype``); no gradient flows
    to ``keypoints`` or ``visible`` (targets are data)."""
    keypoints = keypoints.detach()
    visible = None if visible is None else visible.detach()
    batch, joints, _ = keypoints.shape
    heatmaps = torch.zeros(batch, joints, *size, dtype=torch.float64)
    weights = torch.zeros(batch, joints, dtype=torch.float64)
    for b in range(batch):
        for k in range(joints):
            x, y = (float(c) for c in keypoints[b, k])
            heatmaps[b, k], weights[b, k] = render_joint(x, y, _visible(visible, b, k), size, sigma, style)
    return heatmaps.to(dtype), weights.to(dtype)


def render_heatmaps(keypoints, visible=None, size=(64, 64), sigma=1.0, style="princeton"):
    """Heatmaps (B, K, H, W) float32 of keypoints (B, K, 2) x, y in heatmap pixels."""
    return render_targets(keypoints, visible, size, sigma, style)[0]


def heatmap_loss(preds, keypoints, visible=None, sigma=1.0, style="princeton", weighted=False, *, per_stack=False):
    """The loss of preds (B, S, K, H, W), or with ``per_stack`` the pair (loss, per-stack losses (S,));
    see the module docstring."""
    batch, stacks, joints, height, width = preds.shape
    targets, weights = render_targets(keypoints, visible, (height, width), sigma, style, preds.dtype)
    losses = []
    for s in range(stacks):
        pred = preds[:, s]
        if weighted:
            loss = 0.0
            for k in range(joints):
                w = weights[:, k, None, None]
                loss = loss + 0.5 * torch.mean((pred[:, k] * w - targets[:, k] * w) ** 2)
            losses.append(loss / joints)
        else:
            per_sample = ((pred - targets) ** 2).mean(dim=(1, 2, 3))
            losses.append(per_sample.mean())
    losses = torch.stack(losses)
    loss = losses.sum() if weighted else losses.mean()
    return (loss, losses) if per_stack else loss


def _argmax(heatmap):
    """(row, col, value) of the first maximum in row-major order."""
    index = int(torch.argmax(heatmap.flatten()))
    row, col = divmod(index, heatmap.shape[1])
    return row, col, float(heatmap[row, col])


def _sign(value):
    return (value > 0) - (value < 0)


def _decode_princeton(hm):
    height, width = hm.shape
    row, col, peak = _argmax(hm)
    if not peak > 0:
        return float(col), float(row)
    x = col + (0.25 if hm[row, min(col + 1, width - 1)] > hm[row, max(col - 1, 0)] else -0.25)
    y = row + (0.25 if hm[min(row + 1, height - 1), col] > hm[max(row - 1, 0), col] else -0.25)
    return x + 0.5, y + 0.5


def _quarter_step(hm, row, col):
    return (0.25 * _sign(float(hm[row, col + 1] - hm[row, col - 1])),
            0.25 * _sign(float(hm[row + 1, col] - hm[row - 1, col])))


def _decode_sign_step(hm, first_interior, offset, absent):
    """bearpaw's and mmpose's rule: the argmax, a 0.25 sign step where first_interior <= col, row
    < size - 1, then ``offset``; (absent, absent) when the peak is not > 0."""
    height, width = hm.shape
    row, col, peak = _argmax(hm)
    if not peak > 0:
        return absent, absent
    x, y = float(col), float(row)
    if first_interior <= col < width - 1 and first_interior <= row < height - 1:
        dx, dy = _quarter_step(hm, row, col)
        x, y = x + dx, y + dy
    return x + offset, y + offset


def _decode_bearpaw(hm):  # Torch7's 1-based 1 < p < size reads 0 < col < W - 1 here
    return _decode_sign_step(hm, first_interior=1, offset=0.5, absent=-0.5)


def _decode_mmpose(hm):
    return _decode_sign_step(hm, first_interior=2, offset=0.0, absent=-1.0)


_DECODE = {"princeton": _decode_princeton, "bearpaw": _decode_bearpaw, "mmpose": _decode_mmpose}


def decode_heatmaps(heatmaps, style="princeton"):
    """(coordinates (B, K, 2) x, y in heatmap pixels, peak values (B, K)) of heatmaps (B, K, H, W);
    not differentiable, like fasthg's."""
    heatmaps = heatmaps.detach()
    batch, joints = heatmaps.shape[:2]
    coords = torch.zeros(batch, joints, 2, dtype=torch.float64)
    peaks = torch.zeros(batch, joints, dtype=torch.float64)
    for b in range(batch):
        for k in range(joints):
            hm = heatmaps[b, k].double()
            coords[b, k] = torch.tensor(_DECODE[style](hm), dtype=torch.float64)
            peaks[b, k] = _argmax(hm)[2]
    return coords, peaks


def flip_merge_heatmaps(heatmaps, flipped, flip_pairs):
    """Flip test (princeton's ``inference``): the mean of the heatmaps and those of the mirrored
    image, mirrored back (width reversed) and with left and right joints swapped by ``flip_pairs``."""
    mirrored_back = flipped.flip(-1)[:, list(flip_pairs)]
    return (heatmaps + mirrored_back) / 2


def to_image_coordinates(coords, center, scale, size=(64, 64)):
    """Heatmap coordinates (B, K, 2) to image pixels through each crop: a box of 200 * scale
    pixels around ``center`` (B, 2) mapped onto the (H, W) = ``size`` heatmap, the inverse of
    princeton's and bearpaw's ``get_transform`` (without their rounding to integers).
    ``scale`` is (B,) or (B, 2) (per axis, as mmpose's)."""
    height, width = size
    out = torch.empty(coords.shape, dtype=torch.float64)
    for b in range(coords.shape[0]):
        box = 200 * scale[b].double().expand(2)
        for k in range(coords.shape[1]):
            for axis, res in enumerate((width, height)):
                heatmap_to_crop = float(box[axis]) / res
                out[b, k, axis] = float(center[b, axis]) + (float(coords[b, k, axis]) - res / 2) * heatmap_to_crop
    return out
