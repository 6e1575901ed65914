"""Functional ops: autograd-aware, torch.compile-friendly, with validated arguments."""
from .max_pool import max_pool2x2
from .upsample_add import upsample_add
