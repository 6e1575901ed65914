"""What every command-line program shares: user errors become one line on stderr and exit status 2."""
import sys

from .errors import UserError

USER_ERROR_STATUS = 2  # as argparse uses for a bad command line


def run(main, argv=None):
    """Runs ``main(argv)`` and exits with its return value (None is 0).

    A :class:`~fasthg.errors.UserError` prints ``error: <message>`` and exits with status 2; Ctrl-C
    outside a training loop (which saves and stops by itself) exits with 130, without a traceback.
    """
    try:
        status = main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
