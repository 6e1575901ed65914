"""Functional ops: autograd-aware, torch.compile-friendly, with validated arguments."""
from .heatmap_decode import decode_heatmaps, flip_merge_heatmaps, to_image_coordinates
from .heatmap_loss import heatmap_loss
from .heatmaps import render_heatmaps
from .max_pool import max_pool2x2
from .upsample_add import upsample_add
