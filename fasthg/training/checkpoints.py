"""Training checkpoints: written atomically, read back with clear errors, carrying every RNG state.

A checkpoint is a dict of tensors and plain Python values (loadable with ``weights_only=True``):
``model`` (the unwrapped state_dict, so :func:`fasthg.load_state_dict_compat` and princeton-vl
style code read it directly), ``optimizer``, ``scheduler``, ``scaler``, ``progress`` (epoch,
batches done in it, global step), ``rng`` and the run's ``config``.
"""
import io
import os
import pickle
import random
import zipfile

import numpy as np
import torch

from ..errors import InvalidValueError, MissingFileError, UserError
from ..files import write_atomic

LAST = "last.pt"
BEST = "best.pt"  # the checkpoint of the epoch with the highest validation PCKh (mpii convention)


def save_checkpoint(state, *paths):
    """Writes the checkpoint dict ``state`` to each of ``paths`` in turn, atomically (never a half-written file)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    for path in paths:
        write_atomic(path, buffer.getvalue())


def checkpoint_path(path):
    """The checkpoint file meant by ``path``: the file itself, or a run folder's latest checkpoint."""
    if os.path.isdir(path):
        return os.path.join(path, "checkpoints", LAST)
    return path


def run_folder_of(path):
    """The run folder of ``path``: the folder itself, or the one whose ``checkpoints/`` holds the
    checkpoint file ``path``; None for a file elsewhere."""
    if os.path.isdir(path):
        return path
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else None


def read_checkpoint_file(file):
    """The object saved in the PyTorch file ``file``, read on the CPU with ``weights_only=True``
    (tensors and plain Python values: a checkpoint never runs code when it is read).

    Raises MissingFileError when it does not exist and InvalidValueError when it is not a PyTorch
    file, is truncated, or holds Python objects other than weights (a whole pickled model).
    """
    if not os.path.isfile(file):
        raise MissingFileError(f"checkpoint not found: {file}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error) and "Unsupported global" in str(error):
            raise InvalidValueError(f"checkpoint {file} holds Python objects besides tensors (a whole pickled model?); "
                                    "fasthg reads weights only: save the model's state_dict() instead") from None
        raise InvalidValueError(f"checkpoint {file} is corrupt or not a PyTorch file") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, UnicodeDecodeError):
        raise InvalidValueError(f"checkpoint {file} is corrupt or not a PyTorch file") from None


def load_checkpoint(path):
    """Reads a checkpoint written by :func:`save_checkpoint` (a file or a run folder) on the CPU.

    Raises MissingFileError when it does not exist and UserError when it is truncated, corrupt
    or not a fasthg training checkpoint.
    """
    file = checkpoint_path(path)
    state = read_checkpoint_file(file)
    if not isinstance(state, dict) or not {"model", "config"} <= set(state):
        raise UserError(f"checkpoint {file} is not a fasthg training checkpoint (no 'model' and 'config' entries)")
    return state


def capture_rng():
    """Every random generator's state: Python's, NumPy's, torch's CPU and CUDA generators."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": position,
                  "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state):
    """Puts back the generators' states captured by :func:`capture_rng`."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
