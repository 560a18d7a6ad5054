"""One error family for every wharf command: bad input exits 2, failure exits 1."""

from __future__ import annotations

import click


class WharfError(click.ClickException):
    """Base of wharf's errors; click prints the message as one line and exits with `exit_code`."""

    exit_code = 1


class BadInput(WharfError):
    """The user's input (flags, environment, files) is wrong; nothing was changed."""

    exit_code = 2


class Failure(WharfError):
    """The input was fine but the work failed (a service did not start, a call was refused)."""

    exit_code = 1
