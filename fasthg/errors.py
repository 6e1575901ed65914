"""Errors caused by what the user gave (files, options), which the command-line programs report
as a one-line message and exit status 2 instead of a traceback."""


class UserError(Exception):
    """A problem with the user's input; its message says what and how to fix it."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user pointed at (data, annotations, checkpoint, image) does not exist."""


class InvalidValueError(UserError, ValueError):
    """A value the user gave (an option, a file's content, an argument of the Python API) that
    cannot work: a one-line message on the command line, a ValueError to Python callers."""
