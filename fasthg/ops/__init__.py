"""Functional ops: autograd-aware, torch.compile-friendly, with validated arguments."""
from .heatmaps import decode_heatmaps, flip_merge_heatmaps, heatmap_loss, render_heatmaps, to_image_coordinates
from .max_pool import max_pool2x2
from .upsample_add import upsample_add
