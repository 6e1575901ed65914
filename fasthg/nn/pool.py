"""``fasthg.nn.Pool``: the reference's 2x2 max-pool, whose backward reads a 1-byte window index."""
from typing import Optional, Union

import torch

from ..ops.max_pool import max_pool2x2
from ..ops.statistics import NextBatchNorm
from ..reference import model as reference


class Pool(reference.Pool):
    """Drop-in for :class:`fasthg.reference.Pool` (2x2, stride 2): see :func:`fasthg.ops.max_pool2x2`
    (``next_bn`` and ``pass_input`` too: :mod:`fasthg.nn.chaining`)."""

    def __init__(self, kernel_size: int = 2, stride: int = 2) -> None:
        if (kernel_size, stride) != (2, 2):
            raise ValueError(f"kernel_size, stride: expected (2, 2), got ({kernel_size}, {stride})")
        super().__init__(kernel_size, stride)

    def forward(self, x: torch.Tensor, next_bn: Optional[NextBatchNorm] = None,
                pass_input: bool = False) -> Union[torch.Tensor, tuple]:
        return max_pool2x2(x, next_bn, pass_input)
