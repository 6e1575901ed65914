"""Gaussian heatmap targets, the MSE loss against them with its gradient, and decoding.

One program per joint map (b, k): keypoints (B, K, 2) x, y in heatmap pixels, maps (B, K, H, W)
(preds (B, S, K, H, W)) contiguous, pixel p = v * W + u of a map at (u, v), int32 offsets.

Target of a joint, for the four styles of docs/conventions.md (fasthg/reference/heatmaps.py cites
each project's code)::

    T(u, v) = exp(-((u - cx)^2 + (v - cy)^2) / (2 sigma^2))   inside the joint's box, 0 elsewhere

:func:`joint_box` computes (cx, cy) and the box [x_first, x_end) x [y_first, y_end) per axis,
for a coordinate p (fp64, exactly as Python's floats do it, int() being truncation toward zero):

* princeton: c = int(p), first = int(c - 3 sigma - 1), end = min(int(c + 3 sigma + 2),
  first + ceil(6 sigma + 3)), centre = first + 3 sigma + 1; kept while 0 <= c < size (and x > 0).
* bearpaw: first = int(q - 3 sigma), br = int(q + 3 sigma + 1), end = min(br, first +
  ceil(6 sigma + 1)), centre = first + floor((6 sigma + 1) / 2), with q = p; kept while
  first < size and br >= 0.  mmpose: the same with q = int(p + 0.5).
* unbiased: centre = p, the whole map; kept while p - 3 sigma < size and p + 3 sigma + 1 >= 0.

A joint is also dropped (all-zero map, weight 0) when invisible or not finite.

Loss (one program per map (b, s, k) of preds, looping over pixel blocks): with w = 1, or the
joint's kept flag when ``weighted``, it writes the partial sum over the map of (w (pred - T))^2
and, when ``store_grad``, the gradient of the per-stack loss directly::

    princeton  L_s = 1/N sum (pred - T)^2               dL_s/dpred = 2 (pred - T) / N
    weighted   L_s = 0.5/N sum w^2 (pred - T)^2         dL_s/dpred = w^2 (pred - T) / N

with N = B K H W. The targets are computed in registers and never touch memory; preds are read
once. Sums and T are formed in fp32 (fp64 for fp64 preds).

Decoding: the first maximum in row-major order (a NaN beats any number, as torch.argmax), then a
quarter-pixel step per axis toward the higher neighbour, by the convention's rule (reference
module docstring): princeton (+-0.25, then +0.5, when the peak is > 0), bearpaw
(0.25 sign, interior pixels only, +0.5; -0.5 when the peak is <= 0), mmpose (0.25 sign, pixels
with 1 < col < W - 1 and 1 < row < H - 1, no offset; -1 when the peak is <= 0).
"""
import triton
import triton.language as tl

from .helpers import accumulator, widen

STYLES = ("princeton", "bearpaw", "mmpose", "unbiased")  # the STYLE constexpr is an index into this
PRINCETON, BEARPAW, MMPOSE, UNBIASED = (tl.constexpr(index) for index in range(len(STYLES)))


@triton.jit
def _trunc(x):
    """Rounding toward zero, as Python's int()."""
    return tl.where(x < 0, tl.ceil(x), tl.floor(x))


@triton.jit
def _axis_box(p, size, sigma, STYLE: tl.constexpr):
    """(centre, first, end, kept) of one axis of a joint box, all fp64 but ``kept``."""
    if STYLE == PRINCETON:
        c = _trunc(p)
        first = _trunc(c - 3 * sigma - 1)
        end = tl.minimum(_trunc(c + 3 * sigma + 2), first + tl.ceil(6 * sigma + 3))
        centre = first + 3 * sigma + 1
        kept = (c >= 0) & (c < size)
    elif STYLE == UNBIASED:
        centre = p
        first = 0.0 * p
        end = first + size
        kept = (p - 3 * sigma < size) & (p + 3 * sigma + 1 >= 0)
    else:
        if STYLE == MMPOSE:
            q = _trunc(p + 0.5)
        else:
            q = p
        first = _trunc(q - 3 * sigma)
        br = _trunc(q + 3 * sigma + 1)
        end = tl.minimum(br, first + tl.ceil(6 * sigma + 1))
        centre = first + tl.floor((6 * sigma + 1) / 2)
        kept = (first < size) & (br >= 0)
    return centre, first, end, kept


@triton.jit
def _clamped_int(bound, size):
    """A box bound as int32, clamped to [-1, size + 1] (where it means the same)."""
    return tl.minimum(tl.maximum(bound, -1.0), size + 1.0).to(tl.int32)


@triton.jit
def joint_box(keypoints_ptr, visible_ptr, has_visible, joint, height, width, sigma, STYLE: tl.constexpr):
    """The target box of joint ``joint`` (= b * K + k): (cx, cy, x_first, x_end, y_first, y_end, kept)."""
    x = tl.load(keypoints_ptr + 2 * joint).to(tl.float64)
    y = tl.load(keypoints_ptr + 2 * joint + 1).to(tl.float64)
    visible = tl.load(visible_ptr + joint, mask=has_visible != 0, other=1)
    finite = (tl.abs(x) < float("inf")) & (tl.abs(y) < float("inf"))  # False for NaN
    x = tl.where(finite, x, 0.0)
    y = tl.where(finite, y, 0.0)
    sigma = tl.cast(sigma, tl.float64)
    w = tl.cast(width, tl.float64)
    h = tl.cast(height, tl.float64)
    cx, x_first, x_end, x_kept = _axis_box(x, w, sigma, STYLE)
    cy, y_first, y_end, y_kept = _axis_box(y, h, sigma, STYLE)
    kept = finite & (visible != 0) & x_kept & y_kept
    if STYLE == PRINCETON:
        kept = kept & (x > 0)
    return (cx, cy, _clamped_int(x_first, w), _clamped_int(x_end, w), _clamped_int(y_first, h),
            _clamped_int(y_end, h), kept)


@triton.jit
def gaussian(pixels, width, box, two_sigma_sq):
    """T at ``pixels`` of a map ``width`` wide for a :func:`joint_box`, in ``two_sigma_sq``'s dtype."""
    cx, cy, x_first, x_end, y_first, y_end, kept = box
    u = pixels % width
    v = pixels // width
    # (a scalar & a vector of bools trips the interpreter: tl.where broadcasts instead)
    inside = tl.where(kept, (u >= x_first) & (u < x_end) & (v >= y_first) & (v < y_end), False)
    dx = u.to(two_sigma_sq.dtype) - cx.to(two_sigma_sq.dtype)
    dy = v.to(two_sigma_sq.dtype) - cy.to(two_sigma_sq.dtype)
    return tl.where(inside, tl.exp(-(dx * dx + dy * dy) / two_sigma_sq), 0.0)


@triton.jit
def render_heatmaps_kernel(
    keypoints_ptr, visible_ptr, out_ptr, has_visible, height, width, sigma,
    STYLE: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    joint = tl.program_id(0)
    pixels = tl.program_id(1) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    box = joint_box(keypoints_ptr, visible_ptr, has_visible, joint, height, width, sigma, STYLE)
    values = gaussian(pixels, width, box, (2 * tl.cast(sigma, tl.float64) * sigma).to(tl.float32))
    tl.store(out_ptr + joint * height * width + pixels, values, mask=pixels < height * width)


@triton.jit
def heatmap_loss_kernel(
    preds_ptr, keypoints_ptr, visible_ptr, grad_ptr, partial_ptr, has_visible, store_grad, weighted,
    stacks, joints, height, width, sigma,
    STYLE: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    joint = tl.program_id(0)  # b * K + k
    stack = tl.program_id(1)
    batch = joint // joints
    hw = height * width
    base = ((batch * stacks + stack) * joints + joint % joints) * hw
    box = joint_box(keypoints_ptr, visible_ptr, has_visible, joint, height, width, sigma, STYLE)
    offsets = tl.arange(0, BLOCK_HW)
    total = accumulator(preds_ptr, (BLOCK_HW,))
    two_sigma_sq = (2 * tl.cast(sigma, tl.float64) * sigma).to(total.dtype)
    weight = tl.where((weighted != 0) & (~box[6]), 0.0, 1.0).to(total.dtype)
    count = tl.cast(tl.num_programs(0) * hw, total.dtype)  # N = B K H W
    grad_scale = tl.where(weighted != 0, 1.0, 2.0).to(total.dtype) * weight / count
    for start in range(0, hw, BLOCK_HW):
        pixels = start + offsets
        mask = pixels < hw
        pred = widen(tl.load(preds_ptr + base + pixels, mask=mask, other=0.0))
        diff = tl.where(mask, (pred - gaussian(pixels, width, box, two_sigma_sq)) * weight, 0.0)
        total += diff * diff
        if store_grad != 0:
            tl.store(grad_ptr + base + pixels, (grad_scale * diff).to(grad_ptr.dtype.element_ty), mask=mask)
    tl.store(partial_ptr + joint * stacks + stack, tl.sum(total, axis=0).to(partial_ptr.dtype.element_ty))


@triton.jit
def _sign(d):
    return (d > 0).to(d.dtype) - (d < 0).to(d.dtype)


@triton.jit
def decode_heatmaps_kernel(
    heatmaps_ptr, coords_ptr, peaks_ptr, height, width,
    STYLE: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    joint = tl.program_id(0)
    hw = height * width
    base = joint * hw
    offsets = tl.arange(0, BLOCK_HW)
    best_value = tl.full([], float("-inf"), accumulator(heatmaps_ptr, (1,)).dtype)
    best_index = tl.full([], 0, tl.int32)
    best_nan = tl.full([], 0, tl.int1)
    for start in range(0, hw, BLOCK_HW):
        pixels = start + offsets
        mask = pixels < hw
        values = widen(tl.load(heatmaps_ptr + base + pixels, mask=mask, other=float("-inf")))
        is_nan = values != values
        nan_index = tl.min(tl.where(is_nan, pixels, hw), axis=0)
        block_max = tl.max(tl.where(is_nan, float("-inf"), values), axis=0)
        max_index = tl.min(tl.where(mask & (values == block_max), pixels, hw), axis=0)
        take_nan = (nan_index < hw) & (~best_nan)
        take_max = (~best_nan) & (nan_index == hw) & (block_max > best_value)
        best_index = tl.where(take_nan, nan_index, tl.where(take_max, max_index, best_index))
        best_value = tl.where(take_max, block_max, best_value)
        best_nan = best_nan | take_nan
    row = best_index // width
    col = best_index % width
    peak = widen(tl.load(heatmaps_ptr + base + best_index))
    left = widen(tl.load(heatmaps_ptr + base + row * width + tl.maximum(col - 1, 0)))
    right = widen(tl.load(heatmaps_ptr + base + row * width + tl.minimum(col + 1, width - 1)))
    up = widen(tl.load(heatmaps_ptr + base + tl.maximum(row - 1, 0) * width + col))
    down = widen(tl.load(heatmaps_ptr + base + tl.minimum(row + 1, height - 1) * width + col))
    x = col.to(peak.dtype)
    y = row.to(peak.dtype)
    if STYLE == PRINCETON:
        x = tl.where(peak > 0, x + tl.where(right > left, 0.25, -0.25) + 0.5, x)
        y = tl.where(peak > 0, y + tl.where(down > up, 0.25, -0.25) + 0.5, y)
    else:
        if STYLE == BEARPAW:
            interior = (col > 0) & (row > 0)
            offset = 0.5
            absent = -0.5
        else:
            interior = (col > 1) & (row > 1)
            offset = 0.0
            absent = -1.0
        interior = interior & (col < width - 1) & (row < height - 1)
        x = tl.where(peak > 0, x + tl.where(interior, 0.25 * _sign(right - left), 0.0) + offset, absent)
        y = tl.where(peak > 0, y + tl.where(interior, 0.25 * _sign(down - up), 0.0) + offset, absent)
    tl.store(coords_ptr + 2 * joint, x.to(coords_ptr.dtype.element_ty))
    tl.store(coords_ptr + 2 * joint + 1, y.to(coords_ptr.dtype.element_ty))
    tl.store(peaks_ptr + joint, peak.to(peaks_ptr.dtype.element_ty))
