"""Errors that reach the user as one clear line.

`ReasonkdError` is for bad input (exit 1 from the CLI, message printed without a
traceback); `ConfigError` is for bad configuration keys/values (exit 2).
Messages name the field, file or line and say what to do.
"""


class ReasonkdError(Exception):
    """A user-facing error: the message is shown as-is, without a traceback."""

    exit_code = 1


class ConfigError(ReasonkdError):
    """Unknown or invalid configuration key/value (CLI exit code 2)."""

    exit_code = 2
