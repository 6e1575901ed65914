"""fasthg: fused Triton kernels for the stacked hourglass pose network, as drop-in PyTorch modules."""
from . import ops, reference
from .checkpoint import load_state_dict_compat
from .dispatch import backend, get_backend, set_backend
from .estimator import Pose, PoseEstimator
from .models import PoseNet, StackedHourglass
from .nn import Hourglass, Residual

__version__ = "0.1.0"
