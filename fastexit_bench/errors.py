"""Every error a user can fix: the CLI prints the message on one line and exits with status 2."""


class FastExitError(Exception):
    """A problem with the user's input or environment that they can fix; the message says how."""


class UnknownNameError(FastExitError, KeyError):
    """A dataset, backbone, policy or other registry key that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(FastExitError):
    """A dataset that cannot be found, is declared wrongly, or does not have the expected layout."""


class ModelLoadError(FastExitError):
    """A backbone or trained model that cannot be loaded from any of its sources."""


class PolicyError(FastExitError):
    """A policy cannot be found, imported or run with the given parameter."""


class TrainingError(FastExitError):
    """Training cannot go on (a NaN loss, or a checkpoint from another run)."""


class RecordError(FastExitError):
    """A result file (training record, evaluation artefact, sweep) that is not what this code reads."""


class OutputError(FastExitError):
    """An output path that would destroy something (a folder, an input) or cannot be written."""


class Interrupted(FastExitError):
    """The user stopped a command (Ctrl-C); the message says what was kept and how to go on."""

    EXIT_STATUS = 130  # the shell's status for a SIGINT
