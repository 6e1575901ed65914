"""fasthg.pose.targets: each heatmap style's targets decode back to their keypoints in input pixels, so
training and evaluation agree on where a pixel's centre is."""
import pytest
import torch

from fasthg.pose.targets import DECODING, STRIDE, HeatmapTargets


@pytest.mark.parametrize("style", sorted(DECODING))
def test_decoding_the_targets_returns_the_keypoints(style):
    targets = HeatmapTargets(style, sigma=1.0)
    # 4 to 12 heatmap pixels: clear of the borders, where bearpaw's int() of a negative patch corner
    # moves the patch (a quirk the style keeps)
    keypoints = 16 + torch.rand(4, 16, 2, generator=torch.Generator().manual_seed(0)) * 32
    heatmaps = targets.render(keypoints, torch.ones(4, 16, dtype=torch.bool), (16, 16))
    decoded, peaks = targets.decode(heatmaps)
    error = (decoded - keypoints) / STRIDE  # in heatmap pixels
    # A patch centred on a whole pixel is decoded within half a pixel, princeton's tie rule adding
    # its quarter-pixel step; a half-pixel convention mismatch would shift every joint by 0.5.
    assert error.abs().max() <= 0.75 + 1e-6, (style, error.abs().max())
    assert error.mean(dim=(0, 1)).abs().max() <= 0.3, (style, error.mean(dim=(0, 1)))
    assert bool((peaks > 0.5).all())
