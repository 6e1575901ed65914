"""The network that training, evaluation and prediction build: fasthg's fused PoseNet (its
state_dict is the reference's and princeton-vl's, so checkpoints move freely between them)."""
import torch

import fasthg

from .dispatch import interpreting
from .errors import UserError
from .joints import NUM_JOINTS
from .models import PoseNet


def build_model(nstack, inp_dim, device, oup_dim=NUM_JOINTS, increase=0):
    """A PoseNet (16 MPII joints unless ``oup_dim`` says otherwise) on ``device``, parameters in
    channels_last (the NHWC input's layout)."""
    model = PoseNet(nstack, inp_dim, oup_dim, increase=increase)
    return model.to(device=device, memory_format=torch.channels_last)


def select_backend(name, device):
    """fasthg.set_backend(name), refusing up front what could only fail at the first forward."""
    if name == "triton" and device.type == "cpu" and not interpreting():
        raise UserError("--backend triton on the CPU runs the Triton interpreter: set TRITON_INTERPRET=1 in the "
                        "environment (it is read when fasthg is imported), or use --backend auto or torch")
    fasthg.set_backend(name)
