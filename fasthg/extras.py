"""The packages of fasthg's ``[train]`` extra, imported when first used.

``import fasthg`` and its kernels, ops and modules need only torch, triton and numpy; the commands,
the datasets and the pictures need OpenCV, h5py, matplotlib and tqdm (and scipy for MPII's
official annotations, pycocotools for COCO's AP). Where one of them is missing,
the feature that needs it stops with an error naming the extra to install.
"""
import importlib
import importlib.util

from .errors import UserError

# import name: the distribution that provides it, all in the [train] extra
TRAIN = {"cv2": "opencv-python-headless", "h5py": "h5py", "matplotlib": "matplotlib", "tqdm": "tqdm",
         "tensorboard": "tensorboard", "scipy": "scipy", "pycocotools": "pycocotools"}
COMMANDS = ("cv2", "h5py", "matplotlib", "tqdm")  # what python -m fasthg.train, evaluate and predict use
INSTALL = "pip install 'fasthg[train]'"


class MissingExtraError(UserError, ImportError):
    """A feature needs a package of the [train] extra that is not installed."""


def _missing(names):
    packages = ", ".join(TRAIN.get(name, name) for name in names)
    return MissingExtraError(f"{packages} {'is' if len(names) == 1 else 'are'} not installed (fasthg's [train] extra): {INSTALL}")


def require(name):
    """Imports and returns the module ``name`` (e.g. "cv2", "matplotlib.figure"); raises
    MissingExtraError naming the extra when its package is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name.split(".")[0]:
            raise  # the package is there but broken: its own error says why
        raise _missing([error.name]) from None


def check(names):
    """Raises MissingExtraError listing those of the top-level modules ``names`` that are not installed:
    a command calls it before it writes anything."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise _missing(missing)


class LazyModule:
    """Stands for the module ``name``, imported (by :func:`require`) on first attribute access."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attribute):
        return getattr(require(self._name), attribute)
