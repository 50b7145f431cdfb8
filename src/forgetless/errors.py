"""Errors that reach the user.

`UserError` is bad input: a config key, a data file, a model path. The CLI prints its message on one
line and exits with code 2; anything else is an internal error (exit code 1).
"""

from __future__ import annotations

BAD_INPUT_EXIT_CODE = 2


class UserError(Exception):
    """Bad input from the user. The message is one line that names the file, line or key."""

    exit_code = BAD_INPUT_EXIT_CODE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
