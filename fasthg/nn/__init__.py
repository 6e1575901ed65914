"""Drop-in modules: the reference's parameters and state_dicts, run by fasthg's kernels."""
from .residual import Residual
from .pool import Pool
from .hourglass import Hourglass
