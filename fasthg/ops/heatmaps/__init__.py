"""The heatmap ops, one module each: ``render_heatmaps`` (render.py), ``heatmap_loss`` (loss.py),
``decode_heatmaps`` with the flip test and the map back to the image (decode.py); what they share:
argument checks, their normal form and the kernel launch (arguments.py), and the torch path's
targets of the four styles (torch_targets.py). The kernels are in ``kernels/heatmap.py``."""
from .decode import decode_heatmaps, flip_merge_heatmaps, to_image_coordinates
from .loss import heatmap_loss
from .render import render_heatmaps
