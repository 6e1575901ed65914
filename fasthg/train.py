"""``python -m fasthg.train``: train a stacked hourglass (see ``--help``; options in fasthg.training.options).

Also under ``torchrun --nproc_per_node N -m fasthg.train ...`` (DDP: NCCL on GPU, gloo on CPU).
Exit status: 0 done, 1 the loss diverged, 2 a user error, 128 + signal number when stopped by
SIGTERM or Ctrl-C after saving the checkpoint.
"""
import dataclasses
import sys

from . import cli, distributed, extras
from .errors import UserError
from .data import JOINT_SETS
from .joint_sets import check_model_joints
from .pose.weights import read_pose_weights
from .training.checkpoints import load_checkpoint
from .training.options import parse, resumed
from .training.trainer import Diverged, Interrupted, Trainer


def fine_tuning(config, given):
    """``config`` with the architecture of its --checkpoint weights, and those weights: (state_dict, PoseModelInfo)."""
    state, info = read_pose_weights(config.checkpoint)
    shape = info.architecture
    for name in ("nstack", "inp_dim"):
        if name in given and given[name] != getattr(shape, name):
            raise UserError(f"--{name.replace('_', '-')}: the --checkpoint weights have {getattr(shape, name)}, got {given[name]}")
    check_model_joints(JOINT_SETS[config.dataset], shape.oup_dim, info.source)
    if shape.increase:
        raise UserError(f"--checkpoint: training needs a PoseNet of increase 0, {info.source} has increase {shape.increase}")
    return dataclasses.replace(config, nstack=shape.nstack, inp_dim=shape.inp_dim), (state, info)


def main(argv=None):
    config, resume, given = parse(argv)
    checkpoint = initial_weights = None
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        config = resumed(checkpoint["config"], given, resume)
    elif config.checkpoint is not None:
        config, initial_weights = fine_tuning(config, given)
    extras.check(extras.COMMANDS + (("tensorboard",) if config.tensorboard else ()))  # before anything is written
    context = distributed.setup(config.device)
    try:
        Trainer(config, context, checkpoint, initial_weights).fit()
    except Interrupted as stop:
        if context.is_main:
            print(f"stopped by {stop}", file=sys.stderr)
        return 128 + stop.signum
    except Diverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown(context)
    return 0


if __name__ == "__main__":
    cli.run(main)
