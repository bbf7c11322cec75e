"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class FastExitError(Exception):
    """A problem with the user's input or environment that they can fix; the message says how."""


class UnknownNameError(FastExitError, KeyError):
    """A dataset, backbone or other registry key that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(FastExitError):
    """A dataset that cannot be found or does not have the expected layout."""


class ModelLoadError(FastExitError):
    """A backbone that cannot be loaded from any of its sources."""
