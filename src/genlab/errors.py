"""Exceptions genlab raises for problems the user can fix.

The command line reports an :class:`InvalidInputError` as one line and exits with code 2;
anything else is a bug in genlab and exits with code 1.
"""


class InvalidInputError(ValueError):
    """Bad user input: an option, an array, a file. The message says what and how to fix it."""


class InvalidInputTypeError(InvalidInputError, TypeError):
    """Bad user input of the wrong kind (an entry of an array that is not a number): also a TypeError, as
    NumPy and scikit-learn raise for it."""


class DataError(InvalidInputError):
    """A data source could not be read or failed validation (names the file and the place)."""


class ModelFileError(InvalidInputError):
    """A saved model or checkpoint is missing, malformed or not something genlab wrote."""


class DataChangedError(DataError):
    """A data file changed under a running job. Unlike other bad input it arrives mid-run, so a run keeps
    the checkpoints it already has (resume once the file is restored)."""
