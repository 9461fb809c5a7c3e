"""Errors that reach the user as one line: what was wrong, the value, and what was expected."""


class DifflabError(Exception):
    """Base class: `src.run` prints these as a single line and exits with status 2."""


class ConfigError(DifflabError, ValueError):
    """A config value is out of range or inconsistent; the message names the key."""


class DataError(DifflabError, ValueError):
    """A data file or folder is missing or malformed; the message names the file."""


class CheckpointError(DifflabError, ValueError):
    """A checkpoint cannot be loaded; the message names the file and what was expected."""
