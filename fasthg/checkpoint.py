"""Loading checkpoints written by fasthg, by princeton-vl's code or by DDP-wrapped models."""
import os

import torch

_CONTAINER_KEYS = ("state_dict", "model")
_PREFIXES = ("model.module.", "module.")


def load_state_dict_compat(src, model=None):
    """Returns a plain state_dict from ``src`` (a path or a dict), optionally loaded into ``model``.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers and strips the ``model.module.``
    and ``module.`` prefixes that princeton-vl's trainer and DistributedDataParallel add. With
    ``model`` given, loads strictly and raises a ValueError listing missing and unexpected keys.
    """
    if isinstance(src, dict):
        state = src
    elif not isinstance(src, (str, os.PathLike)) and not hasattr(src, "read"):
        raise TypeError(f"src: expected a state_dict, a checkpoint dict, a path or a file object, got {type(src).__name__}")
    else:
        state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"src: expected a state_dict, a checkpoint dict or a path to one, got {type(state).__name__}")
    while True:
        inner = next((state[k] for k in _CONTAINER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    state = {_strip_prefix(k): v for k, v in state.items()}
    if model is not None:
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"src: state_dict does not fit {type(model).__name__}: "
                             f"missing keys {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                             f"unexpected keys {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
        model.load_state_dict(state)
    return state


def _strip_prefix(key):
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key
