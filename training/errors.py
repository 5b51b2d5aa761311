"""Errors a user can cause (the CLI prints them as one line and exits 2), and training that cannot go on (exit 1)."""


class UserError(Exception):
    """A bad argument, path, file or run folder: the message says which and why."""


class DataError(UserError):
    """A data file that is missing, truncated or not what its name says."""


class CheckpointError(UserError):
    """A run folder whose checkpoint or config cannot be used."""


class TrainingError(Exception):
    """Training of a run cannot go on (its loss stayed NaN or infinite): not the user's doing; the last
    good checkpoint is kept. The CLI prints it as one line and exits 1."""
