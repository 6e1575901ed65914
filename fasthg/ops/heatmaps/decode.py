"""Keypoints from heatmaps: ``decode_heatmaps`` (argmax and a quarter-pixel step, in the three
conventions of docs/conventions.md), ``flip_merge_heatmaps`` (flip test) and
``to_image_coordinates`` (heatmap pixels back to the original image through a crop's centre and scale).

Decoding is a custom op (``fasthg::decode_heatmaps``, one program per joint map); the torch
path gathers the peak and its four neighbours for every joint at once. Flip merging and the
coordinate mapping are a few elementwise torch ops on every backend.
"""
from collections.abc import Sequence

import torch

from ... import dispatch
from ...joints import FLIP_PAIRS
from ..launch import accumulation_dtype
from ..validate import (
    check_choice, check_int32_addressable, check_nonempty, check_same_device, check_same_dtype, check_tensor,
)
from .arguments import check_map_size, launch

DECODE_STYLES = ("princeton", "bearpaw", "mmpose")
KERNEL_LAUNCHES = {"forward": 1}


@torch.library.custom_op("fasthg::decode_heatmaps", mutates_args=())
def _decode_heatmaps(heatmaps: torch.Tensor, style: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch, joints, height, width = heatmaps.shape
    dtype = accumulation_dtype(heatmaps.dtype)
    coords = torch.empty((batch, joints, 2), dtype=dtype, device=heatmaps.device)
    peaks = torch.empty((batch, joints), dtype=dtype, device=heatmaps.device)
    launch("decode_heatmaps", style, heatmaps.dtype, lambda meta: (batch * joints,),
           heatmaps_ptr=heatmaps.contiguous(), coords_ptr=coords, peaks_ptr=peaks, height=height, width=width)
    return coords, peaks


@_decode_heatmaps.register_fake
def _(heatmaps, style):
    dtype = accumulation_dtype(heatmaps.dtype)
    return heatmaps.new_empty((*heatmaps.shape[:2], 2), dtype=dtype), heatmaps.new_empty(heatmaps.shape[:2], dtype=dtype)


def _torch_decode(heatmaps, style):
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, joints, height * width).to(accumulation_dtype(heatmaps.dtype))
    index = flat.argmax(dim=-1)  # the first maximum; a NaN counts as the maximum

    def at(row, col):
        return flat.gather(-1, (row * width + col)[..., None])[..., 0]

    row, col = index // width, index % width
    peak = at(row, col)
    left, right = at(row, (col - 1).clamp(min=0)), at(row, (col + 1).clamp(max=width - 1))
    up, down = at((row - 1).clamp(min=0), col), at((row + 1).clamp(max=height - 1), col)
    x, y = col.to(flat.dtype), row.to(flat.dtype)
    found = peak > 0
    if style == "princeton":
        x = torch.where(found, x + torch.where(right > left, 0.25, -0.25) + 0.5, x)
        y = torch.where(found, y + torch.where(down > up, 0.25, -0.25) + 0.5, y)
    else:
        low, offset, absent = (0, 0.5, -0.5) if style == "bearpaw" else (1, 0.0, -1.0)
        interior = (col > low) & (row > low) & (col < width - 1) & (row < height - 1)
        x = torch.where(found, x + torch.where(interior, 0.25 * torch.sign(right - left), 0.0) + offset, absent)
        y = torch.where(found, y + torch.where(interior, 0.25 * torch.sign(down - up), 0.0) + offset, absent)
    return torch.stack((x, y), dim=-1), peak


def decode_heatmaps(heatmaps: torch.Tensor, style: str = "princeton") -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of heatmaps (B, K, H, W): (coords (B, K, 2) x, y in heatmap pixels, peak values (B, K)),
    float32 (float64 for float64 heatmaps).

    The peak is the first maximum in row-major order. ``style`` (fasthg/reference/heatmaps.py
    cites the code of each): princeton moves each axis +-0.25 toward the higher neighbour (-0.25
    on a tie, neighbours clamped to the map) and adds 0.5 when the peak is > 0; bearpaw moves
    0.25 * sign(next - previous) where 0 < col < W - 1 and 0 < row < H - 1 and adds 0.5, giving
    -0.5 for a peak <= 0; mmpose moves likewise where 1 < col < W - 1 and 1 < row < H - 1, adds
    nothing, and gives -1 for a peak <= 0.
    """
    check_tensor("heatmaps", heatmaps, 4, layout="(B, K, H, W)")
    check_nonempty("heatmaps", heatmaps)
    check_choice("style", style, DECODE_STYLES)
    check_int32_addressable("heatmaps", heatmaps.shape)
    if dispatch.runs_fused(heatmaps):
        return _decode_heatmaps(heatmaps.detach(), style)
    return _torch_decode(heatmaps.detach(), style)


def flip_merge_heatmaps(heatmaps: torch.Tensor, flipped: torch.Tensor,
                        flip_pairs: Sequence[int] = FLIP_PAIRS) -> torch.Tensor:
    """Flip test: the mean of ``heatmaps`` (B, K, H, W) and ``flipped``, the heatmaps of the
    mirrored images, mirrored back (width reversed) with joint j taken from channel flip_pairs[j]
    (left and right swapped; MPII's pairs by default, docs/conventions.md)."""
    check_tensor("heatmaps", heatmaps, 4, layout="(B, K, H, W)")
    check_tensor("flipped", flipped, 4, layout="(B, K, H, W)")
    check_same_device(heatmaps=heatmaps, flipped=flipped)
    check_same_dtype(heatmaps=heatmaps, flipped=flipped)
    if flipped.shape != heatmaps.shape:
        raise ValueError(f"flipped: expected the shape of heatmaps {tuple(heatmaps.shape)}, got {tuple(flipped.shape)}")
    pairs = list(flip_pairs)
    if sorted(pairs) != list(range(heatmaps.shape[1])):
        raise ValueError(f"flip_pairs: expected a permutation of the {heatmaps.shape[1]} joints, got {tuple(pairs)}")
    return (heatmaps + flipped.flip(-1)[:, pairs]) / 2


def to_image_coordinates(coords: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                         size: tuple[int, int] = (64, 64)) -> torch.Tensor:
    """Coordinates (B, K, 2) x, y in pixels of (H, W) = ``size`` heatmaps, mapped to the original
    image: each heatmap covers a box of 200 * scale pixels around ``center`` (B, 2), so
    image = center + (coords - (W, H) / 2) * 200 * scale / (W, H). ``scale`` is (B,) or (B, 2)
    (per axis). No rounding to integers (princeton's and bearpaw's transform truncates)."""
    height, width = check_map_size(size)
    check_tensor("coords", coords, 3, layout="(B, K, 2)")
    check_tensor("center", center, 2, layout="(B, 2)")
    check_tensor("scale", scale, (1, 2), layout="(B,) or (B, 2)")
    check_same_device(coords=coords, center=center, scale=scale)
    batch = coords.shape[0]
    if coords.shape[-1] != 2:
        raise ValueError(f"coords: expected shape (B, K, 2), got {tuple(coords.shape)}")
    if center.shape != (batch, 2):
        raise ValueError(f"center: expected shape (B, 2) = {(batch, 2)}, got {tuple(center.shape)}")
    if scale.shape not in ((batch,), (batch, 2)):
        raise ValueError(f"scale: expected shape (B,) or (B, 2) with B = {batch}, got {tuple(scale.shape)}")
    resolution = torch.tensor([width, height], dtype=coords.dtype, device=coords.device)
    box = 200 * (scale[:, None] if scale.dim() == 1 else scale)
    return center[:, None, :] + (coords - resolution / 2) * (box / resolution)[:, None, :]
