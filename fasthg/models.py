"""The stacked hourglass network built from fasthg's fused blocks.

:class:`StackedHourglass` (NCHW input) and :class:`PoseNet` (princeton-vl's NHWC input in [0, 1])
have exactly the reference's modules, names and state_dicts: princeton-vl checkpoints load as
they are. Every Residual, upsample-add, max-pool and stack head (features conv, BN-ReLU, heatmap
conv and the merges into the next stack, see :mod:`fasthg.ops.head`) runs fused; the stem
(7x7 conv, BN, ReLU) is PyTorch's own. Every tensor a Residual normalises, but the stem's output,
comes with its batch statistics, reduced by the fused op that wrote it (:mod:`fasthg.nn.chaining`).
"""
from collections.abc import Sequence
from typing import Any

import torch

from .ops.validate import check_dtype_like_parameters, check_nonempty, check_size, check_tensor
from .reference import model as reference
from .nn import Hourglass, Pool, Residual
from .dispatch import runs_fused
from .nn.residual import compute_dtype
from .nn.chaining import chained
from .nn.step_counting import count_step_of, forward_counting_steps, running_stats_momentum
from .ops.head import head


def _check_images(x, channel_dim, parameter, training, name="x"):
    layout = "(N, H, W, 3)" if channel_dim == 3 else "(N, 3, H, W)"
    check_tensor(name, x, 4, layout=layout)
    check_dtype_like_parameters(name, x, parameter)
    if x.shape[channel_dim] != 3:
        hint = " (an NCHW batch given to PoseNet, which takes NHWC?)" if channel_dim == 3 and x.shape[1] == 3 else ""
        raise ValueError(f"{name}: expected 3 colour channels in dim {channel_dim} of {layout}, got shape {tuple(x.shape)}{hint}")
    height, width = (x.shape[1], x.shape[2]) if channel_dim == 3 else (x.shape[2], x.shape[3])
    if height % 64 or width % 64:
        raise ValueError(f"{name}: expected height and width divisible by 64 (the stem divides by 4, each "
                         f"hourglass halves four more times), got {height}x{width}")
    check_nonempty(name, x)
    if training and x.shape[0] * (height // 64) * (width // 64) < 2:
        raise ValueError(f"{name}: batch statistics of the innermost hourglass level (1/64 of the image) need more "
                         f"than one value per channel in training, got shape {tuple(x.shape)}")


class StackedHourglass(reference.StackedHourglass):
    """Drop-in for :class:`fasthg.reference.StackedHourglass`; NCHW or channels_last (N, 3, H, W)."""

    residual_class = Residual
    hourglass_class = Hourglass
    pool_class = Pool

    def __init__(self, nstack: int = 8, inp_dim: int = 256, oup_dim: int = 16, bn: bool = False, increase: int = 0) -> None:
        check_size("nstack", nstack, 1)
        check_size("inp_dim", inp_dim, 2)
        check_size("oup_dim", oup_dim, 1)
        check_size("increase", increase, 0)
        super().__init__(nstack, inp_dim, oup_dim, bn=bn, increase=increase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, 1, self.pre[0].conv.weight, self.training)
        if not runs_fused(x):
            return super().forward(x)
        return forward_counting_steps(self, True, self._fused_forward, x)

    def fused_batch_norms(self) -> Sequence[torch.nn.BatchNorm2d]:
        """The stack heads' BNs, whose step counters fused code updates (see :mod:`fasthg.nn.step_counting`)."""
        return [features.bn for _, features in self.features]

    def head(self, i: int, h: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stack ``i``'s head fused (:mod:`fasthg.ops.head`): (preds, the next stack's x, None after the last)."""
        if not runs_fused(h):
            return super().head(i, h, x)
        pending = count_step_of(self, [self.features[i][1].bn]) if self.training else 0
        preds, x_next, _ = self._fused_head(i, h, x, pending)
        return preds, x_next

    def _fused_head(self, i, h, x, pending, next_bn=None):
        """(preds, the next stack's x or None after the last, its statistics for ``next_bn`` or None)."""
        features, last = self.features[i][1], i == self.nstack - 1
        preds, x_next, stats = head(h, x, features.conv, features.bn, self.outs[i].conv,
                                    None if last else self.merge_features[i].conv.conv,
                                    None if last else self.merge_preds[i].conv.conv,
                                    self.training, running_stats_momentum(features.bn, pending) if self.training else 0.0,
                                    compute_dtype(h), next_bn)
        return preds, None if last else x_next, stats

    def _fused_forward(self, x):
        pending = count_step_of(self) if self.training else 0  # the heads' BNs
        stem, first, pool, second, third = self.pre
        x = first(stem(x))  # the stem is PyTorch's: the first Residual reduces its input's statistics
        x, stats = chained(pool, x, consumer=second)
        x, stats = chained(second, x, stats, consumer=third)
        hourglasses = [sequential[0] for sequential in self.hgs]
        x, stats = chained(third, x, stats, consumer=hourglasses[0])
        stack_preds = []
        for i in range(self.nstack):
            residual = self.features[i][0]
            # x also feeds the head's merge, through the hourglass's pass-through of it: the
            # hourglass's backward adds the merge's gradient of x as it writes its own
            out, out_stats, x = hourglasses[i](x, stats, residual.input_batch_norm(), pass_input=True)
            h = residual(out, out_stats)
            next_bn = None if i == self.nstack - 1 else hourglasses[i + 1].input_batch_norm()
            preds, x, stats = self._fused_head(i, h, x, pending, next_bn)
            stack_preds.append(preds)
        return torch.stack(stack_preds, 1)


class PoseNet(StackedHourglass):
    """Drop-in for princeton-vl's PoseNet: NHWC images (N, H, W, 3) in [0, 1]."""

    def __init__(self, nstack: int, inp_dim: int, oup_dim: int, bn: bool = False, increase: int = 0, **kwargs: Any) -> None:
        super().__init__(nstack, inp_dim, oup_dim, bn=bn, increase=increase)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        _check_images(imgs, 3, self.pre[0].conv.weight, self.training, "imgs")
        # NHWC memory viewed as NCHW is exactly channels_last: no copy.
        return super().forward(imgs.permute(0, 3, 1, 2))
