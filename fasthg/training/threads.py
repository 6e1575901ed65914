"""How many threads PyTorch's CPU operators use in a training run (``--threads``).

PyTorch's default is one thread per core, and each operator waits for its slowest thread: where
other processes keep a core busy, a step waits on a thread that is not running. The bare
``python -m fasthg.train``'s steps, side by side in one process on 2 cores with the load average at
11: 1.1 and 1.3 s with one thread, 14.9 s with two. One thread never collapses like that, so it is
the default; a machine kept for one run may gain from ``--threads`` set to its cores.
"""
import os

import torch

DEFAULT_THREADS = 1


def choose_threads(requested):
    """Sets the number of PyTorch's intra-op CPU threads and returns (number, where it came from):
    ``requested`` (``--threads``) when given, else ``OMP_NUM_THREADS`` when set, else 1."""
    if requested is not None:
        threads, source = requested, "--threads"
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        threads, source = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    else:
        threads, source = DEFAULT_THREADS, "default"
    torch.set_num_threads(threads)
    return threads, source
