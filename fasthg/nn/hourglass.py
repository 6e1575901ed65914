"""``fasthg.Hourglass``: the reference's hourglass built from fused Residuals and upsample_add."""
from collections.abc import Sequence
from typing import Optional, Union

import torch

from ..dispatch import runs_fused
from ..ops.upsample_add import upsample_add
from ..ops.statistics import NextBatchNorm, chain_result
from ..ops.validate import check_dtype_like_parameters, check_flag, check_nonempty, check_size, check_tensor
from ..reference import model as reference
from .chaining import chained
from .pool import Pool
from .residual import Residual
from .step_counting import forward_counting_steps


class Hourglass(reference.Hourglass):
    """Drop-in for :class:`fasthg.reference.Hourglass`: the same parameters and state_dict.

    On the fused path up1 runs last and adds nearest_x2(low3(...)) in its conv3's epilogue: neither
    up1's output nor the upsampled tensor is written, and the sum takes no pass of its own. Every
    tensor a Residual normalises comes with its statistics, reduced by the op that wrote it (the
    max-pool, a Residual, the inner hourglass's up1); ``x_stats`` and ``next_bn`` chain it to the
    modules around it (:mod:`fasthg.nn.chaining`).

    x feeds the pool and up1: the pool passes x on to up1, which passes it on to the caller with
    ``pass_input`` (the result is then (out, stats or None, x's pass-through), for x's next
    consumer: the stack head's merge in a model), so that each fused backward adds the gradient of
    x's later consumers to its own as it writes it, and autograd sums no gradients of x.
    """

    residual_class = Residual
    pool_class = Pool

    def __init__(self, n: int, f: int, bn: bool | None = None, increase: int = 0) -> None:
        check_size("n", n, 1)
        check_size("f", f, 2)
        check_size("increase", increase, 0)
        super().__init__(n, f, bn=bn, increase=increase)

    def forward(self, x: torch.Tensor, x_stats: Optional[torch.Tensor] = None,
                next_bn: Optional[NextBatchNorm] = None, pass_input: bool = False) -> Union[torch.Tensor, tuple]:
        check_tensor("x", x, 4, layout="(N, C, H, W)")
        check_flag("pass_input", pass_input)
        if x.shape[1] != self.up1.bn1.num_features:
            raise ValueError(f"x: expected {self.up1.bn1.num_features} channels (dim 1), got shape {tuple(x.shape)}")
        if x.shape[2] % (1 << self.n) or x.shape[3] % (1 << self.n):
            raise ValueError(f"x: expected height and width divisible by 2^n = {1 << self.n} (each level halves "
                             f"them), got shape {tuple(x.shape)}")
        check_nonempty("x", x)
        check_dtype_like_parameters("x", x, self.up1.conv1.conv.weight)
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] < 2 << (2 * self.n):
            raise ValueError(f"x: batch statistics of the innermost level need more than one value per channel "
                             f"in training, got shape {tuple(x.shape)}")
        return forward_counting_steps(self, runs_fused(x), self._forward, x, x_stats, next_bn, pass_input)

    def fused_batch_norms(self) -> Sequence[torch.nn.BatchNorm2d]:
        """None of its own: its Residuals list theirs (see :mod:`fasthg.nn.step_counting`)."""
        return ()

    def input_batch_norm(self) -> Optional[NextBatchNorm]:
        """The BN that normalises x first (up1's bn1), for the op that writes x."""
        return self.up1.input_batch_norm()

    def _forward(self, x, x_stats, next_bn, pass_input):
        if not runs_fused(x):
            low, up1 = self.low3(self.low2(self.low1(self.pool1(x)))), self.up1(x)
            result = upsample_add(low, up1, next_bn)
            out, stats = result if next_bn is not None else (result, None)
            return chain_result(out, stats, x, next_bn, pass_input)
        pooled, stats, x = self.pool1(x, self.low1.input_batch_norm(), pass_input=True)
        low1, stats = chained(self.low1, pooled, stats, consumer=self.low2)
        low2, stats = chained(self.low2, low1, stats, consumer=self.low3)
        low = self.low3(low2, stats)
        return self.up1(x, x_stats, next_bn, pass_input=pass_input, upsampled=low)
