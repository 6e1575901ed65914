"""``fasthg.Residual``: the reference's pre-activation bottleneck, run by the fused kernels."""
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .. import dispatch
from ..ops.residual import residual
from ..ops.statistics import NextBatchNorm, chain_result, check_next_bn, check_x_stats
from ..ops.validate import (check_dtype_like_parameters, check_flag, check_int32_addressable, check_nonempty,
                            check_same_device, check_size, check_tensor)
from ..reference import model as reference
from .chaining import next_batch_norm
from .step_counting import count_step_of, forward_counting_steps, running_stats_momentum


def compute_dtype(x):
    """The dtype the kernels run in: autocast's for the device when it is on (as for a conv), else x's."""
    device = x.device.type
    if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _fold(conv, bn):
    """(weight, bias) of bn(conv(x)) as one conv, with bn's running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * scale.view(-1, 1, 1, 1), (conv.bias - bn.running_mean) * scale + bn.bias


class Residual(reference.Residual):
    """Drop-in for :class:`fasthg.reference.Residual`: the same parameters and state_dict.

    On the fused path a forward is 4 kernel launches in training (3 in eval), and only x, the
    two intermediate conv outputs and per-channel statistics are kept for backward. With
    in == out the unused ``skip_layer`` takes no part in the computation and does not require
    grad. On CPU tensors with the ``auto`` backend it runs the reference's math with PyTorch's
    own kernels.

    In a model, the op that writes x may pass x's batch statistics (``x_stats``), and with
    ``next_bn`` (the BN that normalises the output next) the result is (out, its statistics),
    reduced in conv3's epilogue (None on PyTorch's path): see :mod:`fasthg.nn.chaining`. A container
    whose x feeds another op too passes ``pass_input``: the result is then (out, stats or None, x's
    pass-through), which that op takes instead of x, so that the fused backward adds its gradient of
    x to dx in the dx kernel: x as the kernels take it (under autocast, in autocast's dtype), x
    itself on PyTorch's path. ``upsampled`` (N, out_dim, H/2, W/2), with inp_dim == out_dim: its
    nearest x2 upsampling is added to the output, in conv3's epilogue on the fused path (how
    :class:`fasthg.Hourglass` adds its inner branch to up1 without a pass of its own).
    """

    def __init__(self, inp_dim: int, out_dim: int) -> None:
        check_size("inp_dim", inp_dim, 1)
        check_size("out_dim", out_dim, 2)  # the bottleneck has out_dim // 2 channels
        super().__init__(inp_dim, out_dim)
        # The kernels load a channels_last 3x3 weight ([C_out, 3, 3, C_in] in memory) as vectors
        # (kernels/conv.py); values, shape and state_dict stay the reference's.
        self.conv2.conv.to(memory_format=torch.channels_last)
        if not self.need_skip:
            # Kept for the state_dict, out of autograd: DDP then needs no find_unused_parameters
            # and optimizers skip the parameters (their grad stays None).
            self.skip_layer.requires_grad_(False)

    def forward(self, x: torch.Tensor, x_stats: Optional[torch.Tensor] = None,
                next_bn: Optional[NextBatchNorm] = None, pass_input: bool = False,
                upsampled: Optional[torch.Tensor] = None) -> Union[torch.Tensor, tuple]:
        check_tensor("x", x, 4, layout="(N, C, H, W)")
        check_same_device(x=x, weight=self.conv1.conv.weight)
        if x.shape[1] != self.bn1.num_features:
            raise ValueError(f"x: expected {self.bn1.num_features} channels (dim 1), got shape {tuple(x.shape)}")
        check_nonempty("x", x)
        check_dtype_like_parameters("x", x, self.conv1.conv.weight)
        if x.shape[0] * x.shape[2] * x.shape[3] < 2 and self.training:
            raise ValueError(f"x: batch statistics need more than one value per channel, got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        check_int32_addressable("x", (n, max(x.shape[1], self.conv3.conv.out_channels), h, w))
        check_x_stats(x_stats, x.shape[1])
        check_next_bn(next_bn, self.conv3.conv.out_channels)
        check_flag("pass_input", pass_input)
        if upsampled is not None:
            self._check_upsampled(upsampled, x)
        if not dispatch.runs_fused(x):
            out = super().forward(x) if self.training or not self._has_running_stats() else self._folded_forward(x)
            if upsampled is not None:
                out = out + F.interpolate(upsampled, scale_factor=2, mode="nearest")
            return chain_result(out, None, x, next_bn, pass_input)
        return forward_counting_steps(self, True, self._fused_forward, x, x_stats, next_bn, pass_input, upsampled)

    def _check_upsampled(self, upsampled, x):
        check_tensor("upsampled", upsampled, 4, layout="(N, C, H/2, W/2)")
        check_same_device(x=x, upsampled=upsampled)
        if self.need_skip:
            raise ValueError("upsampled: added only by a Residual with an identity skip (inp_dim == out_dim), "
                             f"this one maps {self.bn1.num_features} to {self.conv3.conv.out_channels} channels")
        n, c, h, w = x.shape
        if tuple(upsampled.shape) != (n, c, h // 2, w // 2) or h % 2 or w % 2:
            raise ValueError(f"upsampled: expected shape (N, C, H/2, W/2) = {(n, c, h // 2, w // 2)} for x of "
                             f"shape {tuple(x.shape)} (even H and W), got {tuple(upsampled.shape)}")

    def fused_batch_norms(self) -> Sequence[torch.nn.BatchNorm2d]:
        """The BNs whose step counters fused code updates (see :mod:`fasthg.nn.step_counting`)."""
        return (self.bn1, self.bn2, self.bn3)

    def input_batch_norm(self) -> Optional[NextBatchNorm]:
        """bn1 for the op that writes x (:mod:`fasthg.nn.chaining`): None unless it normalises with
        batch statistics that update running ones (training, every BN tracking them)."""
        return next_batch_norm(self.bn1) if self.training and self._has_running_stats() else None

    def _fused_forward(self, x, x_stats, next_bn, pass_input, upsampled):
        bns = self.fused_batch_norms()
        convs = (self.conv1.conv, self.conv2.conv, self.conv3.conv)
        training = self.training or not self._has_running_stats()  # normalise with batch statistics
        momentum = running_stats_momentum(self.bn1, count_step_of(self)) if self.training else 0.0
        dtype = compute_dtype(x)
        x = x.to(dtype)
        skip = self.skip_layer.conv if self.need_skip else None
        return residual(
            x, [bn.weight for bn in bns], [bn.bias for bn in bns],
            [bn.running_mean for bn in bns], [bn.running_var for bn in bns],
            [conv.weight.to(dtype) for conv in convs], [conv.bias for conv in convs],
            skip.weight.to(dtype) if skip is not None else None, skip.bias if skip is not None else None,
            training, momentum, self.bn1.eps, x_stats=x_stats, next_bn=next_bn, pass_input=pass_input,
            upsampled=upsampled.to(dtype) if upsampled is not None else None,
        )

    def _has_running_stats(self):
        """Whether every BN keeps running statistics (else even eval normalises with the batch's)."""
        return all(bn.track_running_stats for bn in self.fused_batch_norms())

    def _folded_forward(self, x):
        """Eval on PyTorch's kernels, with the running statistics. bn2 and bn3 are affine maps
        right after conv1 and conv2, so they fold into those convs' weights and biases (exact up
        to rounding): two passes fewer. Functional calls throughout (no submodule hooks fire, as
        on the fused path), so ReLU and the skip add can work in place on fresh intermediates
        (no backward needs them): three allocations fewer."""
        bn1 = self.bn1
        out = F.batch_norm(x, bn1.running_mean, bn1.running_var, bn1.weight, bn1.bias, False, 0.0, bn1.eps)
        out = F.relu(F.conv2d(F.relu(out, inplace=True), *_fold(self.conv1.conv, self.bn2)), inplace=True)
        out = F.relu(F.conv2d(out, *_fold(self.conv2.conv, self.bn3), padding=1), inplace=True)
        out = F.conv2d(out, self.conv3.conv.weight, self.conv3.conv.bias)
        skip = self.skip_layer.conv
        residual = F.conv2d(x, skip.weight, skip.bias) if self.need_skip else x
        # In place unless the sum must be of a wider type (autocast: a bf16 conv plus an fp32 x).
        return out.add_(residual) if torch.result_type(out, residual) == out.dtype else out + residual

