"""Loading checkpoints written by fasthg, by princeton-vl's code or by DDP-wrapped models."""
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

_CONTAINER_KEYS = ("state_dict", "model")
_PREFIXES = ("model.module.", "module.")


def load_state_dict_compat(src: str | os.PathLike | BinaryIO | Mapping[str, Any],
                           model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
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
        expected_shapes = model.state_dict()
        wrong = [f"{key} {tuple(value.shape)} (expected {tuple(expected_shapes[key].shape)})"
                 for key, value in state.items() if tuple(value.shape) != tuple(expected_shapes[key].shape)]
        if wrong:
            raise ValueError(f"src: state_dict does not fit {type(model).__name__}: tensors of other shapes: "
                             f"{', '.join(wrong[:5])}{'...' if len(wrong) > 5 else ''}")
        model.load_state_dict(state)
    return state


@dataclass(frozen=True)
class PoseNetArchitecture:
    """The constructor arguments of the PoseNet a state_dict belongs to."""

    nstack: int
    inp_dim: int
    oup_dim: int  # the number of joints
    increase: int = 0


def posenet_architecture(state):
    """The :class:`PoseNetArchitecture` of a PoseNet ``state_dict`` (prefixes already stripped), read
    from its tensors' shapes: nstack is the number of heatmap convs ``outs.i``, whose weights are
    (oup_dim, inp_dim, 1, 1); increase widens the outer hourglass level (``low1``'s output).
    Raises ValueError naming what a PoseNet's state_dict holds when ``state`` is something else."""
    heads = [state.get(f"outs.{i}.conv.weight") for i in range(len(state))]
    nstack = next((i for i, weight in enumerate(heads) if not (isinstance(weight, torch.Tensor) and weight.dim() == 4)),
                  len(heads))
    stem = state.get("pre.0.conv.weight")
    if nstack == 0 or not isinstance(stem, torch.Tensor) or tuple(stem.shape) != (64, 3, 7, 7):
        found = ", ".join(repr(key) for key in list(state)[:3]) or "none"
        raise ValueError("state: expected a PoseNet state_dict (a 7x7 stem conv 'pre.0.conv.weight' of shape "
                         f"(64, 3, 7, 7) and heatmap convs 'outs.0.conv.weight', ...), found keys {found}")
    oup_dim, inp_dim = heads[0].shape[:2]
    widened = state.get("hgs.0.0.low1.conv3.conv.weight")
    increase = widened.shape[0] - inp_dim if isinstance(widened, torch.Tensor) else 0
    return PoseNetArchitecture(nstack, int(inp_dim), int(oup_dim), int(increase))


def _strip_prefix(key):
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key
