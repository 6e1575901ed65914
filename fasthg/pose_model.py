"""Any PoseNet's weights as a model ready for inference, and what they were trained for.

Accepted: a fasthg run folder or checkpoint file (``model`` and ``config``), princeton-vl's
``checkpoint.pt`` (``state_dict`` under ``model.module.`` prefixes, also saved as ``.pth.tar``), a
bare state_dict file, or any of these as a dict in memory. The architecture (nstack, inp_dim, the
number of joints, increase) is read from the tensors' shapes; the input size, heatmap convention
and training data from the run's config where there is one, else princeton's MPII set-up (256x256
crops, princeton heatmaps, sigma 1), which is what princeton's published weights expect.
"""
import os
import warnings
from dataclasses import dataclass

from .checkpoint import PoseNetArchitecture, load_state_dict_compat, posenet_architecture
from .checkpointing import checkpoint_path, read_checkpoint_file
from .errors import InvalidValueError
from .model_factory import build_model

PRINCETON_INPUT_SIZE = 256


class SyntheticWeightsWarning(UserWarning):
    """The weights were trained on fasthg's synthetic figures, which say little about real people."""


@dataclass(frozen=True)
class PoseModelInfo:
    """What inference needs to know about a model's weights besides the tensors."""

    architecture: PoseNetArchitecture
    input_size: int  # the side of the square crops it was trained on, a multiple of 64
    heatmap_style: str  # its targets' convention, which decoding follows (fasthg.targets)
    sigma: float
    trained_on: str | None  # the dataset of a fasthg run ("synthetic", "mpii"); None when unknown
    source: str  # the file read, or a description of the object given
    run_config: dict | None = None  # a fasthg run's whole TrainConfig


def princeton_info(architecture, source):
    """The info of weights that do not say how they were trained: princeton's MPII set-up."""
    return PoseModelInfo(architecture, PRINCETON_INPUT_SIZE, "princeton", 1.0, None, source)


def read_pose_weights(source):
    """(state_dict, :class:`PoseModelInfo`) of ``source``: a path (file or run folder) or a dict.

    Raises MissingFileError for a path that does not exist, InvalidValueError (a ValueError) for a
    file or dict that holds no PoseNet's weights, TypeError for any other kind of ``source``.
    """
    if isinstance(source, (str, os.PathLike)):
        name = checkpoint_path(os.fspath(source))
        label, saved = f"checkpoint {name}", read_checkpoint_file(name)
    elif isinstance(source, dict):
        name, label, saved = "(the dict given)", "checkpoint_or_model", source
    else:
        raise TypeError(f"checkpoint_or_model: expected a path, a run folder, a state_dict or a PoseNet module, got {type(source).__name__}")
    if not isinstance(saved, dict):
        raise InvalidValueError(f"{label}: not a PoseNet's weights: expected a dict of tensors, found a {type(saved).__name__}")
    config = saved.get("config") if isinstance(saved.get("config"), dict) and "model" in saved else None
    state = load_state_dict_compat(saved)
    try:
        architecture = posenet_architecture(state)
    except ValueError as error:
        raise InvalidValueError(f"{label}: not a fasthg run, princeton-vl's checkpoint.pt or any PoseNet's weights "
                                f"({error})") from None
    if config is None:
        return state, princeton_info(architecture, name)
    return state, PoseModelInfo(architecture, config["input_size"], config["heatmap_style"], config["sigma"],
                                config["dataset"], name, config)


def load_pose_model(source, device):
    """(model in eval mode on ``device``, :class:`PoseModelInfo`) of any PoseNet checkpoint ``source``."""
    state, info = read_pose_weights(source)
    shape = info.architecture
    model = build_model(shape.nstack, shape.inp_dim, device, shape.oup_dim, shape.increase)
    load_weights(model, state, info)
    return model.eval(), info


def load_weights(model, state, info):
    """Loads ``state`` (read with ``info`` by :func:`read_pose_weights`) into ``model``, strictly."""
    try:
        load_state_dict_compat(state, model)
    except ValueError as error:
        raise InvalidValueError(f"checkpoint {info.source} is not a complete PoseNet: {error}") from None


def photo_notice(info):
    """A warning for weights trained on synthetic figures (None for any other weights)."""
    if info.trained_on != "synthetic":
        return None
    return (f"{info.source} was trained on fasthg's synthetic stick figures, not on photos: on real people its "
            "keypoints mean little. For photos use weights trained on MPII, such as princeton-vl's published "
            "checkpoint.pt (README, 'Estimate poses').")


def warn_if_synthetic(info):
    """Warns (:class:`SyntheticWeightsWarning`) when ``info``'s weights come from synthetic figures."""
    notice = photo_notice(info)
    if notice is not None:
        warnings.warn(notice, SyntheticWeightsWarning, stacklevel=3)
