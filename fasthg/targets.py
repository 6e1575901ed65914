"""The bridge between keypoints in input pixels and fasthg's heatmap ops (one implementation of
rendering, loss and decoding serves training, evaluation and prediction)."""
from dataclasses import dataclass

from . import ops

STRIDE = 4  # input pixels per heatmap pixel: the stem halves twice
# Each style decodes in its own project's convention; unbiased targets peak at the keypoint's
# exact position in pixel indices, which mmpose's decoding (no half-pixel shift) returns.
DECODING = {"princeton": "princeton", "bearpaw": "bearpaw", "mmpose": "mmpose", "unbiased": "mmpose"}


@dataclass(frozen=True)
class HeatmapTargets:
    """A heatmap convention (docs/conventions.md): ``style``, the Gaussian's ``sigma`` in heatmap
    pixels, and whether the loss weights joints by visibility."""

    style: str = "princeton"
    sigma: float = 1.0
    weighted: bool = False

    def loss(self, predictions, keypoints, visible):
        """The loss of every stack's heatmaps (B, S, K, h, w) against targets at ``keypoints``
        (B, K, 2) x, y in input pixels, for joints where ``visible`` (B, K)."""
        return ops.heatmap_loss(predictions, keypoints / STRIDE, visible, self.sigma, self.style, self.weighted)

    def render(self, keypoints, visible, size):
        """The target heatmaps (B, K, *size) of ``keypoints`` (B, K, 2) x, y in input pixels."""
        return ops.render_heatmaps(keypoints / STRIDE, visible, size, self.sigma, self.style)

    def decode(self, heatmaps):
        """Coordinates (B, K, 2) in input pixels and the peak values (B, K) of heatmaps (B, K, h, w)."""
        coordinates, peaks = ops.decode_heatmaps(heatmaps, DECODING[self.style])
        return coordinates * STRIDE, peaks
