"""``fasthg.Residual``: the reference's pre-activation bottleneck, run by the fused kernels."""
import torch

from .. import dispatch
from ..ops.residual import residual
from ..ops.validate import check_same_device, check_tensor
from ..reference import model as reference


def runs_fused(x):
    """Fused kernels for tensors the Triton backend takes, and for meta tensors (shape and memory accounting)."""
    return x.device.type == "meta" or dispatch.use_triton(x)


def compute_dtype(x):
    """The dtype the kernels run in: autocast's for the device when it is on (as for a conv), else x's."""
    device = x.device.type
    if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


class Residual(reference.Residual):
    """Drop-in for :class:`fasthg.reference.Residual`: the same parameters and state_dict.

    On the fused path a forward is 4 kernel launches in training (3 in eval), and only x, the
    two intermediate conv outputs and per-channel statistics are kept for backward. With
    in == out the unused ``skip_layer`` takes no part in the computation and does not require
    grad. On CPU tensors with the ``auto`` backend it runs the reference's math with PyTorch's
    own kernels.
    """

    def __init__(self, inp_dim, out_dim):
        super().__init__(inp_dim, out_dim)
        if not self.need_skip:
            # Kept for the state_dict, out of autograd: DDP then needs no find_unused_parameters
            # and optimizers skip the parameters (their grad stays None).
            self.skip_layer.requires_grad_(False)

    def forward(self, x):
        check_tensor("x", x, 4, layout="(N, C, H, W)")
        check_same_device(x=x, weight=self.conv1.conv.weight)
        if x.shape[1] != self.bn1.num_features:
            raise ValueError(f"x: expected {self.bn1.num_features} channels (dim 1), got shape {tuple(x.shape)}")
        if x.shape[0] * x.shape[2] * x.shape[3] < 2 and self.training:
            raise ValueError(f"x: batch statistics need more than one value per channel, got shape {tuple(x.shape)}")
        if not runs_fused(x):
            return super().forward(x)
        bns = (self.bn1, self.bn2, self.bn3)
        convs = (self.conv1.conv, self.conv2.conv, self.conv3.conv)
        training = self.training or any(not bn.track_running_stats for bn in bns)
        momentum = self._momentum() if self.training else 0.0
        dtype = compute_dtype(x)
        x = x.to(dtype)
        skip = self.skip_layer.conv if self.need_skip else None
        return residual(
            x, [bn.weight for bn in bns], [bn.bias for bn in bns],
            [bn.running_mean for bn in bns], [bn.running_var for bn in bns],
            [conv.weight.to(dtype) for conv in convs], [conv.bias for conv in convs],
            skip.weight.to(dtype) if skip is not None else None, skip.bias if skip is not None else None,
            training, momentum, self.bn1.eps,
        )

    def _momentum(self):
        """The running-statistics factor nn.BatchNorm2d would use this step (counting the step)."""
        torch._foreach_add_([bn.num_batches_tracked for bn in (self.bn1, self.bn2, self.bn3)], 1)  # one launch
        if self.bn1.momentum is None:
            return 1.0 / float(self.bn1.num_batches_tracked)
        return self.bn1.momentum
