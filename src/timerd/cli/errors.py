"""The CLI's failure: one line on stderr and exit code 1, for every `timerd` command."""

from __future__ import annotations

from typing import Any

import click


class CliError(click.ClickException):
    """An operation failed: `timerd: error: ...` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"timerd: error: {self.format_message()}", err=True)
