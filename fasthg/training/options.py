"""The options of ``python -m fasthg.train``: parsing, per-dataset defaults and checks.

Options the user does not give take their dataset's default, so ``--dataset mpii`` alone gets
the paper's set-up and the bare command gets one that learns the synthetic figures in minutes
on a laptop CPU. ``--resume`` takes the run's saved configuration; only the options in
:data:`RESUMABLE` may change then.
"""
import argparse
import dataclasses
import datetime
import json
import os
import typing
from dataclasses import dataclass

from ..data import DATASETS, ON_DISK
from ..dispatch import BACKENDS
from ..errors import MissingFileError, UserError
from ..precision import AMP_MODES
from .checkpoints import run_folder_of

HEATMAP_STYLES = ("princeton", "bearpaw", "mmpose", "unbiased")
SCHEDULES = ("constant", "step", "cosine")
CHOICES = {"dataset": DATASETS, "schedule": SCHEDULES, "heatmap_style": HEATMAP_STYLES, "amp": AMP_MODES, "backend": BACKENDS}
RESUMABLE = ("epochs", "max_steps", "workers", "threads", "device", "backend", "save_every", "output", "tensorboard")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as the run folder's config.json."""

    dataset: str
    data_dir: str | None
    annot_dir: str | None
    train_size: int  # synthetic: figures per epoch
    val_size: int  # synthetic: validation figures
    input_size: int
    nstack: int
    inp_dim: int
    batch_size: int
    epochs: int
    max_steps: int | None
    lr: float
    schedule: str
    warmup_steps: int
    heatmap_style: str
    sigma: float
    weighted_loss: bool
    amp: str
    backend: str
    device: str
    workers: int
    seed: int
    save_every: int
    output: str
    checkpoint: str | None = None  # the weights the run started from (fine-tuning), None from scratch
    threads: int | None = None  # PyTorch's CPU threads; None: OMP_NUM_THREADS or 1 (fasthg.training.threads)
    tensorboard: bool = False  # also log the metrics for TensorBoard


DEFAULT_VAL_SIZE = 512
_COMMON_DEFAULTS = {
    "dataset": "synthetic", "data_dir": None, "annot_dir": None, "train_size": 8192, "val_size": DEFAULT_VAL_SIZE,
    "max_steps": None, "schedule": "cosine", "warmup_steps": 50, "heatmap_style": "princeton", "sigma": 1.0,
    "weighted_loss": False, "amp": "auto", "backend": "auto", "device": "auto", "workers": 0, "seed": 0,
    "save_every": 200,
}
# synthetic: measured to learn well within minutes on 2 CPU cores (64-pixel crops give 3x the steps
# of 128-pixel ones in the same time, which matters more than resolution this early in training);
# mpii: princeton-vl's 2-stack set-up; coco: the same.
_PHOTO_DEFAULTS = {"input_size": 256, "nstack": 2, "inp_dim": 256, "batch_size": 16, "epochs": 100, "lr": 1e-3,
                   "schedule": "step", "warmup_steps": 0, "workers": 4, "save_every": 1000}
DATASET_DEFAULTS = {
    "synthetic": {"input_size": 64, "nstack": 2, "inp_dim": 64, "batch_size": 16, "epochs": 6, "lr": 2e-3},
    "mpii": _PHOTO_DEFAULTS,
    "coco": _PHOTO_DEFAULTS,
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fasthg.train", argument_default=argparse.SUPPRESS,
        description="Train a stacked hourglass on the built-in synthetic figures (default) or on MPII. "
                    "Each run writes config.json, checkpoints/, metrics.jsonl, curves.png and predictions.png "
                    "to its output folder and prints the validation PCKh against a mean-pose baseline.")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, help="default: synthetic")
    data.add_argument("--data-dir", help="mpii: the folder of MPII's images; coco: the COCO folder (train2017/, val2017/)")
    data.add_argument("--annot-dir", help="mpii: the folder of train.h5 and valid.h5, or of the official "
                                          "mpii_human_pose_v1_u12_1.mat and valid.h5 (default: annot beside --data-dir); "
                                          "coco: the folder of person_keypoints_*2017.json (default: annotations in --data-dir)")
    data.add_argument("--train-size", type=int, help="synthetic: figures per epoch, drawn anew each epoch (default 8192)")
    data.add_argument("--val-size", type=int, help="synthetic: validation figures (default 512)")
    data.add_argument("--input-size", type=int, help="input crop side in pixels, a multiple of 64 (synthetic 64, mpii 256)")
    data.add_argument("--workers", type=int, help="data-loader processes (synthetic 0, mpii 4)")
    model = parser.add_argument_group("model")
    model.add_argument("--nstack", type=int, help="hourglass stacks (default 2)")
    model.add_argument("--inp-dim", type=int, help="hourglass features (synthetic 64, mpii 256)")
    model.add_argument("--heatmap-style", choices=HEATMAP_STYLES, help="target and decoding convention (default princeton)")
    model.add_argument("--sigma", type=float, help="target Gaussian's sigma in heatmap pixels (default 1)")
    model.add_argument("--weighted-loss", action="store_true", help="visibility-weighted loss summed over stacks")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--batch-size", type=int, help="per process (default 16)")
    optimisation.add_argument("--epochs", type=int, help="synthetic 6, mpii 100")
    optimisation.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in all")
    optimisation.add_argument("--lr", type=float, help="Adam's learning rate (synthetic 2e-3, mpii 1e-3)")
    optimisation.add_argument("--schedule", choices=SCHEDULES,
                              help="learning-rate schedule after warm-up: cosine to 0 (synthetic), x0.1 at 60%% and 85%% (mpii), constant")
    optimisation.add_argument("--warmup-steps", type=int, help="linear warm-up (synthetic 50, mpii 0)")
    optimisation.add_argument("--amp", choices=AMP_MODES, help="mixed precision; auto (default): bf16 on a CUDA GPU that has it, fp32 on CPUs (the same numbers on any CPU); fp16 only on CUDA")
    run = parser.add_argument_group("run")
    run.add_argument("--backend", choices=BACKENDS, help="fasthg kernels: auto (Triton on CUDA), triton, torch")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    run.add_argument("--threads", type=int, help="PyTorch's CPU threads per process (default: OMP_NUM_THREADS if set, "
                                                 "else 1, which stays fast where other work shares the cores)")
    run.add_argument("--seed", type=int, help="seeds the model, the data and their order (default 0)")
    run.add_argument("--output", help="run folder (default runs/<dataset>-<date>-<time>)")
    run.add_argument("--save-every", type=int, help="also checkpoint every N steps; 0: only at epoch ends")
    run.add_argument("--tensorboard", action="store_true", help="also log the metrics for TensorBoard, in the run folder's tensorboard/")
    run.add_argument("--config", help="take the options from this config.json (a run's), options given here overriding "
                                      "them; the output folder is not taken (default: a new one)")
    run.add_argument("--resume", help="continue the run of this folder or checkpoint file exactly")
    run.add_argument("--checkpoint", help="fine-tune these weights (a fasthg run or checkpoint, princeton-vl's "
                                          "checkpoint.pt or a PoseNet state_dict file); --nstack and --inp-dim come from them")
    return parser


def _check(config):
    """Raises UserError naming the first option whose value cannot work."""
    def at_least(name, minimum):
        value = getattr(config, name)
        if value < minimum:
            raise UserError(f"--{name.replace('_', '-')}: expected at least {minimum}, got {value}")

    for name, minimum in (("nstack", 1), ("inp_dim", 2), ("batch_size", 2), ("epochs", 1), ("workers", 0),
                          ("warmup_steps", 0), ("save_every", 0), ("train_size", 2), ("val_size", 1), ("input_size", 64)):
        at_least(name, minimum)
    for name in ("max_steps", "threads"):
        if getattr(config, name) is not None:
            at_least(name, 1)
    if config.input_size % 64:
        raise UserError(f"--input-size: expected a multiple of 64 (the network halves it 6 times), got {config.input_size}")
    if config.inp_dim % 2:
        raise UserError(f"--inp-dim: expected an even number (each residual halves it inside), got {config.inp_dim}")
    for name in ("lr", "sigma"):
        if not 0 < getattr(config, name) < float("inf"):
            raise UserError(f"--{name}: expected a finite number > 0, got {getattr(config, name)}")
    if config.dataset in ON_DISK and not config.data_dir:
        raise UserError(f"--dataset {config.dataset} needs --data-dir, {ON_DISK[config.dataset]}")


def read_config(path):
    """The options in the JSON file ``path`` (a run's config.json), but its output folder: a run
    started from it writes to a new folder unless --output says otherwise."""
    try:
        with open(path) as file:
            values = json.load(file)
    except FileNotFoundError:
        raise MissingFileError(f"--config: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"--config: {path} is not a readable JSON file ({error})") from None
    if not isinstance(values, dict):
        raise UserError(f"--config: {path} holds a JSON {type(values).__name__}, expected an object of options")
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise UserError(f"--config: {path} has options that fasthg.train does not know: {', '.join(unknown)}")
    for name, value in values.items():
        hint = hints[name]
        if isinstance(value, bool) is not (hint is bool) or not (isinstance(value, hint) or hint is float and isinstance(value, int)):
            raise UserError(f"--config: {path}: {name} must be {hint.__name__ if isinstance(hint, type) else hint}, got {value!r}")
    for name, choices in CHOICES.items():
        if name in values and values[name] not in choices:
            raise UserError(f"--config: {path}: {name} must be one of {', '.join(choices)}, got {values[name]!r}")
    values.pop("output", None)
    return values


def parse(argv=None):
    """Returns (TrainConfig, resume path or None, the set of option names given on the command line)."""
    given = vars(build_parser().parse_args(argv))
    resume, config_file = given.pop("resume", None), given.pop("config", None)
    if resume is not None:
        if config_file is not None:
            raise UserError("--config: a resumed run keeps its own configuration; give --config or --resume, not both")
        return None, resume, given
    saved = {} if config_file is None else read_config(config_file)
    dataset = given.get("dataset", saved.get("dataset", _COMMON_DEFAULTS["dataset"]))
    values = {**_COMMON_DEFAULTS, **DATASET_DEFAULTS[dataset], **saved, **given}
    values.setdefault("output", os.path.join("runs", f"{dataset}-{datetime.datetime.now():%Y%m%d-%H%M%S}"))
    config = TrainConfig(**values)
    _check(config)
    return config, None, given


def resumed(saved, given, resume):
    """The saved run's TrainConfig with the options in RESUMABLE that were given again (the others
    may be repeated, but not changed).

    The run writes to the folder it resumes (or to ``--output``), never to the folder saved in its
    config, which is where the run was first written: a copied run must not write to its original.
    """
    changed = sorted(name for name, value in given.items() if name not in RESUMABLE and saved.get(name) != value)
    if changed:
        names = ", ".join("--" + name.replace("_", "-") for name in changed)
        raise UserError(f"{names}: cannot change when resuming (only {', '.join('--' + n.replace('_', '-') for n in RESUMABLE)})")
    output = given.get("output", run_folder_of(resume))
    if output is None:
        raise UserError(f"--resume: {resume} is not in a run folder's checkpoints/; give --output, the folder to write the run to")
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{**{k: v for k, v in saved.items() if k in fields}, **given, "output": output})
    _check(config)
    return config
