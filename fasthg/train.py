"""``python -m fasthg.train``: train a stacked hourglass (see ``--help``; options in fasthg.train_options).

Also under ``torchrun --nproc_per_node N -m fasthg.train ...`` (DDP: NCCL on GPU, gloo on CPU).
Exit status: 0 done, 1 the loss diverged, 2 a user error, 128 + signal number when stopped by
SIGTERM or Ctrl-C after saving the checkpoint.
"""
import dataclasses
import sys

from . import cli, distributed, extras
from .checkpointing import load_checkpoint
from .errors import UserError
from .joints import NUM_JOINTS
from .pose_model import read_pose_weights
from .train_options import parse, resumed
from .trainer import Diverged, Interrupted, Trainer


def fine_tuning(config, given):
    """``config`` with the architecture of its --checkpoint weights, and those weights: (state_dict, PoseModelInfo)."""
    state, info = read_pose_weights(config.checkpoint)
    shape = info.architecture
    for name in ("nstack", "inp_dim"):
        if name in given and given[name] != getattr(shape, name):
            raise UserError(f"--{name.replace('_', '-')}: the --checkpoint weights have {getattr(shape, name)}, got {given[name]}")
    if shape.oup_dim != NUM_JOINTS or shape.increase:
        raise UserError(f"--checkpoint: training needs a PoseNet of {NUM_JOINTS} joints and increase 0, {info.source} has "
                        f"{shape.oup_dim} joints and increase {shape.increase}")
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
