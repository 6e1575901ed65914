"""``python -m fasthg.train``: train a stacked hourglass (see ``--help``; options in fasthg.train_options).

Also under ``torchrun --nproc_per_node N -m fasthg.train ...`` (DDP: NCCL on GPU, gloo on CPU).
Exit status: 0 done, 1 the loss diverged, 2 a user error, 128 + signal number when stopped by
SIGTERM or Ctrl-C after saving the checkpoint.
"""
import sys

from . import cli, distributed
from .checkpointing import load_checkpoint
from .train_options import parse, resumed
from .trainer import Diverged, Interrupted, Trainer


def main(argv=None):
    config, resume, given = parse(argv)
    checkpoint = None
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        config = resumed(checkpoint["config"], given)
    context = distributed.setup(config.device)
    try:
        Trainer(config, context, checkpoint).fit()
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
