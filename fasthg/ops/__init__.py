"""Functional ops: autograd-aware, torch.compile-friendly, with validated arguments."""
from .upsample_add import upsample_add
