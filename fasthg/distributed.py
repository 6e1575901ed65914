"""Process-group set-up for ``torchrun`` and the few collectives training needs.

Without torchrun (no ``WORLD_SIZE`` in the environment) everything here degrades to a single
process, so the training loop is written once for both.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import InvalidValueError


@dataclass
class Context:
    """Where this process stands: its rank among ``world_size`` and the device it computes on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        """Rank 0, the only process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def choose_device(name, local_rank=0):
    """The torch.device for ``--device`` ("auto", "cpu", "cuda" or "cuda:N"); auto prefers CUDA."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValueError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidValueError("--device cuda: no CUDA device is available here (use --device cpu)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise InvalidValueError(f"--device {name}: no such device here ({torch.cuda.device_count()} CUDA device(s): "
                            f"cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif device.type != "cpu":
        raise InvalidValueError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    return device


def use_device(name, local_rank=0):
    """:func:`choose_device`, made the current CUDA device when it is one: the kernels enter their
    tensors' device themselves, but CUDA calls that take no device (bf16 support, the RNG, cuBLAS
    handles, NCCL) act on the current one, device 0 unless set, whatever ``--device`` said."""
    device = choose_device(name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def setup(device_name):
    """Joins torchrun's process group when launched by it (NCCL on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = use_device(device_name, local_rank)
    if world_size == 1:
        return Context(0, 1, device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), world_size, device)


def shutdown(context):
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def sum_across(context, values):
    """Sums a float tensor over all processes (returned on the CPU)."""
    if not context.distributed:
        return values
    reduced = values.to(context.device)
    dist.all_reduce(reduced)
    return reduced.cpu()


def gather_to_main(context, value):
    """A list of every process's ``value`` (any picklable object) on rank 0, None elsewhere."""
    if not context.distributed:
        return [value]
    gathered = [None] * context.world_size if context.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered
