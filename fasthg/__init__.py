"""fasthg: fused Triton kernels for the stacked hourglass pose network, as drop-in PyTorch modules."""
from . import ops, reference
from .dispatch import backend, get_backend, set_backend
from .checkpoint import load_state_dict_compat

__version__ = "0.1.0"
from .nn import Residual
