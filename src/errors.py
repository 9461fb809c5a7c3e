"""Errors that reach the user as one line: what was wrong, the value, and what was expected."""


class DifflabError(Exception):
    """Base class: `src.run` prints these as a single line (`error: ...`) and exits with status 1."""


class ConfigError(DifflabError, ValueError):
    """A config value is out of range or inconsistent; the message names the key."""


class DataError(DifflabError, ValueError):
    """A data file or folder is missing or malformed; the message names the file."""


class CheckpointError(DifflabError, ValueError):
    """A checkpoint cannot be loaded; the message names the file and what was expected."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of a wrapped exception's message (its type name if empty), cut to `limit` characters:
    how a library's multi-line error is quoted inside one of ours."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else type(err).__name__
