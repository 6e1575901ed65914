"""The network that training, evaluation and prediction build: fasthg's fused PoseNet (its
state_dict is the reference's and princeton-vl's, so checkpoints move freely between them)."""
import torch

import fasthg

from .checkpoint import load_state_dict_compat
from .checkpointing import checkpoint_path, load_checkpoint
from .dispatch import interpreting
from .errors import UserError
from .joints import NUM_JOINTS
from .models import PoseNet


def build_model(nstack, inp_dim, device):
    """A PoseNet for the 16 MPII joints on ``device``, parameters in channels_last (the NHWC input's layout)."""
    model = PoseNet(nstack, inp_dim, NUM_JOINTS)
    return model.to(device=device, memory_format=torch.channels_last)


def load_trained_model(path, device):
    """The model of a training checkpoint (file or run folder) in eval mode, and the run's config dict."""
    checkpoint = load_checkpoint(path)
    config = checkpoint["config"]
    model = build_model(config["nstack"], config["inp_dim"], device)
    try:
        load_state_dict_compat(checkpoint["model"], model)
    except ValueError as error:
        raise UserError(f"checkpoint {checkpoint_path(path)} does not fit its own config: {error}") from None
    return model.eval(), config


def select_backend(name, device):
    """fasthg.set_backend(name), refusing up front what could only fail at the first forward."""
    if name == "triton" and device.type == "cpu" and not interpreting():
        raise UserError("--backend triton on the CPU runs the Triton interpreter: set TRITON_INTERPRET=1 in the "
                        "environment (it is read when fasthg is imported), or use --backend auto or torch")
    fasthg.set_backend(name)
