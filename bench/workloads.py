"""What is measured: the two networks, their inputs, a training step and an inference.

Both sides are princeton-vl's PoseNet (NHWC images in [0, 1]): ``fasthg.reference.PoseNet`` run by
eager PyTorch, and ``fasthg.PoseNet`` with the same weights. A training step is a forward, the
princeton loss (the MSE of every stack's heatmaps (N, nstack, 16, H/4, W/4) against the target,
which is the mean of its per-stack, per-sample means) and the backward; an inference is a forward
in eval mode without autograd.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import fasthg
from fasthg.kernels.registry import TRITON_TYPE

SIDES = {"eager": fasthg.reference.PoseNet, "fasthg": fasthg.PoseNet}


@dataclass(frozen=True)
class Config:
    """A network and batch: ``size`` x ``size`` images, heatmaps of ``size // 4``."""
    nstack: int
    batch: int
    size: int
    dtype: torch.dtype
    inp_dim: int = 256
    oup_dim: int = 16

    @property
    def dtype_name(self):
        return TRITON_TYPE[self.dtype]

    def describe(self):
        return f"{self.nstack}-stack, inp_dim {self.inp_dim}, batch {self.batch}, {self.size}x{self.size}, {self.dtype_name}"


def build(config, device, seed=0):
    """{side: network} of ``config`` on ``device`` in ``config.dtype``, fasthg's holding the
    reference's weights (on meta there are no weights)."""
    torch.manual_seed(seed)
    with torch.device(device if device == "meta" else "cpu"):
        models = {side: network(config.nstack, config.inp_dim, config.oup_dim) for side, network in SIDES.items()}
    if device != "meta":
        models["fasthg"].load_state_dict(models["eager"].state_dict())
    return {side: model.to(device=device, dtype=config.dtype) for side, model in models.items()}


def inputs(config, device, seed=0):
    """(images (N, size, size, 3), target heatmaps (N, nstack, oup_dim, size/4, size/4)) in ``config.dtype``."""
    generator = torch.Generator().manual_seed(seed)
    heatmap = config.size // 4
    shapes = ((config.batch, config.size, config.size, 3), (config.batch, config.nstack, config.oup_dim, heatmap, heatmap))
    if device == "meta":
        return tuple(torch.empty(shape, dtype=config.dtype, device=device) for shape in shapes)
    return tuple(torch.rand(shape, generator=generator).to(device=device, dtype=config.dtype) for shape in shapes)


def training_step(model, images, target):
    """Forward, the princeton loss and backward; gradients start from None, as after an optimizer's zero_grad."""
    for parameter in model.parameters():
        parameter.grad = None
    F.mse_loss(model(images), target).backward()


def inference(model, images, target):
    """A forward without autograd."""
    with torch.no_grad():
        model(images)


# workload: (the model's training mode, the step)
WORKLOADS = {"training step": (True, training_step), "inference": (False, inference)}
