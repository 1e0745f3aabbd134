"""The `timerd` command line: builds settings or a client, calls the library, prints.

Exit codes: 0 success, 1 the operation failed (not found, conflict, unreachable),
2 usage error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from timerd import __version__
from timerd.cli.list_command import list_
from timerd.cli.nodes_command import nodes
from timerd.cli.ops import backup, stats
from timerd.cli.options import (
    CONTEXT,
    F,
)
from timerd.cli.service_commands import service
from timerd.cli.timer_commands import add, attempts, cancel, fire, reschedule, show
from timerd.cli.transfer_commands import export, import_
from timerd.config import env_name, load_settings, setting_fields
from timerd.errors import ConfigError


class UsageLineError(click.UsageError):
    """A usage error as one line on stderr, exit code 2.

    `timerd: error: No such option '--bogus'. (see 'timerd serve --help')`: click's own
    UsageError.show prints three (the usage line, a `Try ... --help` hint, `Error: ...`).
    """

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message(), error.ctx)

    def show(self, file: Any = None) -> None:
        lines = self.format_message().splitlines()
        message = " ".join(part.strip() for part in lines if part.strip())
        hint = ""
        if self.ctx is not None and self.ctx.command.get_help_option(self.ctx) is not None:
            option = max(self.ctx.command.get_help_option_names(self.ctx), key=len)
            hint = f" (see '{self.ctx.command_path} {option}')"
        click.echo(f"timerd: error: {message}{hint}", file=file, err=True)


# click shows the help of a group run without a subcommand through a UsageError (exit 2)
_SHOWN_AS_IS = (UsageLineError, click.exceptions.NoArgsIsHelpError)


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except _SHOWN_AS_IS:
        raise
    except click.UsageError as exc:
        raise UsageLineError(exc) from exc


class TimerdGroup(click.Group):
    """The `timerd` group: any usage error, in it or in a subcommand, is shown as one line.

    Parsing (`make_context`) and running the chosen subcommand (`invoke`, which parses the
    subcommand's own arguments) are where click raises usage errors; a UsageLineError raised
    there reaches click's standalone handling in `main` like any other ClickException, which
    shows it and exits 2. `--help`, `--version` and the help of a bare `timerd` are untouched.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


# the group --------------------------------------------------------------------------------


@click.group(cls=TimerdGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="timerd")
def cli() -> None:
    """timerd: fire HTTP webhooks after a delay, durably.

    \b
    Example:
      timerd serve &
      timerd add https://example.com/hook --in 1h30m
    """


def _serve_options(fn: F) -> F:
    """Add one flag per setting, named like the setting (`grace_s` is `--grace-s`)."""
    for f in reversed(setting_fields()):
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        click_type: Any = {"int": int, "float": float, "Path": click.Path(path_type=Path)}.get(
            kind, str
        )
        if "choices" in f.metadata:
            click_type = click.Choice(f.metadata["choices"], case_sensitive=False)
        # a bool setting is a bare flag (--insecure); unset stays None so env and file count
        as_flag: dict[str, Any] = {"is_flag": True, "flag_value": True} if kind == "bool" else {}
        fn = click.option(
            flag,
            f.name,
            type=None if as_flag else click_type,
            default=None,
            help=f"{f.metadata['help']} [env {env_name(f.name)}; default {_show(f.default)}]",
            **as_flag,
        )(fn)
    return fn


def _show(value: Any) -> str:
    if isinstance(value, tuple):  # list settings take commas on the command line
        return ",".join(value) or "none"
    if value == "":
        return "none"
    return "the user data folder" if str(value) == "~timerd-default" else str(value)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file (env TIMERD_CONFIG; default: the user config folder).",
)
@_serve_options
def serve(config_file: Path | None, **flags: Any) -> None:
    """Run the daemon in the foreground.

    \b
    Example:
      timerd serve --port 8000 --db ./timers.db
    """
    from timerd.daemon.app import run  # noqa: PLC0415  other commands start faster without the server's imports

    try:
        settings = load_settings(config_file=config_file, overrides=flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run(settings))


for command in (add, show, fire, cancel, reschedule, attempts, list_, export, import_, nodes):
    cli.add_command(command)
for command in (stats, backup, service):  # the daemon's figures, its database, its unit file
    cli.add_command(command)


def main() -> None:
    """Entry point of the `timerd` console script."""
    cli(prog_name="timerd")
