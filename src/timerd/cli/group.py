"""The `timerd` command line: builds settings or a client, calls the library, prints.

Exit codes: 0 success, 1 the operation failed (not found, conflict, unreachable),
2 usage error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from timerd import __version__
from timerd.cli.db_option import Db, db_flag
from timerd.cli.errors import CliError
from timerd.cli.http_client import ApiError
from timerd.cli.list_command import list_, read_db, render_table, run_async
from timerd.cli.nodes_command import nodes
from timerd.cli.ops import backup, stats
from timerd.cli.service_commands import service
from timerd.cli.target import (
    Target,
    addr_option,
    configured_db,
    daemon_db_option,
    locate,
    verbose_option,
)
from timerd.cli.times import format_left, format_time, parse_duration, parse_instant
from timerd.config import env_name, load_settings, setting_fields
from timerd.errors import ConfigError, TimerdError
from timerd.models import Status, redact_url
from timerd.store import AnyStore, display_db
from timerd.store.transfer import export_line, export_store, import_timers, parse_lines

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
STATUS_CHOICES = [*(s.value for s in Status), "all"]


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


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return run_async(coro)


def _call(target: Target | None, fn: Callable[[], T], flags: dict[str, str] | None = None) -> T:
    """Run a daemon call; its error becomes one line naming the daemon, with the user's flags.

    `flags` maps API fields to the options that set them (`fire_at` is `--at`).
    """
    try:
        return fn()
    except TimerdError as exc:
        message = str(exc)
        if isinstance(exc, ApiError) and exc.errors and flags:
            message = "; ".join(f"{flags.get(f, f)}: {m}" for f, m in exc.errors)
        if target is not None and target.addr not in message:
            message += f" (timerd at {target.addr})"
        raise CliError(message) from None


def db_option(fn: F) -> F:
    """Add `--db`, a database to read directly instead of asking the daemon."""
    return db_flag(
        "Read this database file (or postgresql:// URL) directly, read-only, instead of "
        "asking the daemon."
    )(fn)


def json_option(fn: F) -> F:
    """Add `--json` for scripts."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def daemon_options(fn: F) -> F:
    """Add `--addr`, `--db` (the daemon running on it) and `--verbose`."""
    return addr_option(daemon_db_option(verbose_option(fn)))


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


def _time_body(
    in_: str | None,
    at: str | None,
    hours: int | None,
    minutes: int | None,
    seconds: float | None,
) -> tuple[dict[str, Any], float]:
    """Return the body's time fields and the due instant they ask for (as of now)."""
    parts = [in_ is not None, at is not None, any(v is not None for v in (hours, minutes, seconds))]
    if sum(parts) > 1:
        raise click.UsageError("give one of --in, --at, or --hours/--minutes/--seconds")
    now = time.time()
    if in_ is not None:
        delay_s = parse_duration(in_)
        return {"seconds": delay_s}, now + delay_s
    if at is not None:
        when = parse_instant(at)  # local time when it has no offset: the API needs one
        return {"fire_at": when.isoformat()}, when.timestamp()
    if parts[2]:
        body: dict[str, Any] = {}
        for name, value in (("hours", hours), ("minutes", minutes), ("seconds", seconds)):
            if value is not None:
                body[name] = value
        delay_s = (hours or 0) * 3600 + (minutes or 0) * 60 + (seconds or 0)
        return body, now + delay_s
    raise click.UsageError("say when: --in 1h2m3s, --at INSTANT, or --hours/--minutes/--seconds")


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_duration(value)
        except click.BadParameter as exc:
            exc.ctx, exc.param = ctx, param
            raise
    return value


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_instant(value)
        except click.BadParameter as exc:
            exc.ctx, exc.param = ctx, param
            raise
    return value


_TIME_FLAGS = {"fire_at": "--at", "url": "URL"}
_DURATION_HELP = "Delay like 1d12h, 1.5h, 10m or 90s (units d, h, m, s; fractions allowed)."
_INSTANT_HELP = "Due time, RFC 3339: 2026-12-24T10:00:00 is local time, or give an offset/Z."


@cli.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--in", "in_", metavar="DURATION", callback=_duration, help=_DURATION_HELP)
@click.option("--at", metavar="INSTANT", callback=_instant, help=_INSTANT_HELP)
@click.option("--hours", type=click.IntRange(min=0), help="Hours of delay.")
@click.option("--minutes", type=click.IntRange(min=0), help="Minutes of delay.")
@click.option("--seconds", type=click.FloatRange(min=0), help="Seconds of delay.")
@click.option("--idempotency-key", help="Create at most once for this key (24 h).")
@json_option
@daemon_options
def add(
    url: str,
    in_: str | None,
    at: str | None,
    hours: int | None,
    minutes: int | None,
    seconds: float | None,
    idempotency_key: str | None,
    as_json: bool,
    addr: str | None,
    db: Path | None,
    verbose: bool,
) -> None:
    """Create a timer that POSTs to URL/<id>: print its id, and on stderr when it is due.

    One of --in, --at or --hours/--minutes/--seconds is required.

    \b
    Example:
      timerd add https://example.com/hook --in 4h0m1s
      id=$(timerd add https://example.com/hook --at 2026-12-24T10:00:00)
    """
    body, due_at = _time_body(in_, at, hours, minutes, seconds)
    body = {"url": url, **body}
    target = locate(addr, db, verbose=verbose)
    timer_id = _call(target, lambda: target.client().create(body, idempotency_key), _TIME_FLAGS)
    if as_json:
        click.echo(json.dumps({"id": timer_id, "fire_at": round(due_at, 3)}))
        return
    click.echo(timer_id)
    left = format_left(due_at - time.time())
    click.echo(f"due {format_time(due_at)} (in {left})", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@addr_option
@db_option
@verbose_option
def show(timer_id: str, as_json: bool, addr: str | None, db: Db | None, verbose: bool) -> None:
    """Show one timer.

    \b
    Example:
      timerd show P88hOXPkZ1dQIMlaHyP8ImH --json
    """
    if db is not None:
        if addr is not None:
            raise click.UsageError("give either --addr or --db, not both")
        found = _run(read_db(db, lambda store: store.get_timer(timer_id)))
        if found is None:
            raise CliError(f"no timer {timer_id} in {display_db(db)}")
        data = found.to_json(time.time())
    else:
        target = locate(addr, None, verbose=verbose)
        data = _call(target, lambda: target.client().get(timer_id))
    _print_timer(data, as_json)


def _print_timer(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in (
        "id",
        "status",
        "url",
        "time_left",
        "fire_at",
        "created_at",
        "next_attempt_at",
        "fired_at",
        "attempts",
        "last_status_code",
        "last_error",
    ):
        value = data.get(key)
        if key.endswith("_at"):
            value = format_time(value)
        elif key == "url":
            value = redact_url(str(value))
        elif key == "time_left":
            value = format_left(value)
        click.echo(f"{key + ':':<18}{'-' if value is None else value}")


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@daemon_options
def fire(timer_id: str, as_json: bool, addr: str | None, db: Path | None, verbose: bool) -> None:
    """Fire a timer now instead of at its time (also retries a failed one).

    \b
    Example:
      timerd fire P88hOXPkZ1dQIMlaHyP8ImH
    """
    target = locate(addr, db, verbose=verbose)
    data = _call(target, lambda: target.client().fire(timer_id))
    _echo_result(data, as_json, f"firing {timer_id}")


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@daemon_options
def cancel(timer_id: str, as_json: bool, addr: str | None, db: Path | None, verbose: bool) -> None:
    """Cancel a timer that has not fired.

    \b
    Example:
      timerd cancel P88hOXPkZ1dQIMlaHyP8ImH
    """
    target = locate(addr, db, verbose=verbose)
    data = _call(target, lambda: target.client().cancel(timer_id))
    _echo_result(data, as_json, f"cancelled {timer_id}")


def _echo_result(data: dict[str, Any], as_json: bool, line: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else line)


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@click.option("--in", "in_", metavar="DURATION", callback=_duration, help=_DURATION_HELP)
@click.option("--at", metavar="INSTANT", callback=_instant, help=_INSTANT_HELP)
@click.option("--url", help="New webhook URL.")
@json_option
@daemon_options
def reschedule(
    timer_id: str,
    in_: str | None,
    at: str | None,
    url: str | None,
    as_json: bool,
    addr: str | None,
    db: Path | None,
    verbose: bool,
) -> None:
    """Move a pending or retrying timer, and/or change its URL.

    \b
    Example:
      timerd reschedule P88hOXPkZ1dQIMlaHyP8ImH --in 10m
    """
    body: dict[str, Any] = {}
    if in_ is not None or at is not None:
        body.update(_time_body(in_, at, None, None, None)[0])
    if url is not None:
        body["url"] = url
    if not body:
        raise click.UsageError("give --in, --at or --url")
    target = locate(addr, db, verbose=verbose)
    flags = {**_TIME_FLAGS, "url": "--url"}
    data = _call(target, lambda: target.client().reschedule(timer_id, body), flags)
    due = f"{format_time(data['fire_at'])} (in {format_left(data['fire_at'] - time.time())})"
    _echo_result(data, as_json, f"{timer_id} due {due}")


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@daemon_options
def attempts(
    timer_id: str, as_json: bool, addr: str | None, db: Path | None, verbose: bool
) -> None:
    """Show a timer's delivery attempts, oldest first.

    \b
    Example:
      timerd attempts P88hOXPkZ1dQIMlaHyP8ImH
    """
    target = locate(addr, db, verbose=verbose)
    rows = _call(target, lambda: target.client().attempts(timer_id))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no attempts yet", err=True)
        return
    render_table(
        ["#", "STARTED", "DURATION", "STATUS", "OUTCOME", "ERROR"],
        (
            [
                str(r["attempt"]),
                format_time(r["started_at"]),
                f"{r['duration_ms']:.1f} ms",
                "-" if r["status_code"] is None else str(r["status_code"]),
                str(r["outcome"]),
                r["error"] or "",
            ]
            for r in rows
        ),
    )


@cli.command(context_settings=CONTEXT)
@click.option(
    "--status",
    type=click.Choice(STATUS_CHOICES),
    default="all",
    show_default=True,
    help="Only timers in this status.",
)
@addr_option
@db_option
@verbose_option
def export(status: str, addr: str | None, db: Db | None, verbose: bool) -> None:
    """Write timers as JSON Lines on stdout, one timer a line.

    \b
    Example:
      timerd export --db ~/old/timerd.db > timers.jsonl
    """
    if db is not None:
        if addr is not None:
            raise click.UsageError("give either --addr or --db, not both")
        wanted = None if status == "all" else Status(status)

        async def dump(store: AnyStore) -> None:
            async for line in export_store(store, wanted, time.time()):
                click.echo(line)

        _run(read_db(db, dump))
        return
    target = locate(addr, None, verbose=verbose)

    def fetch() -> None:
        client = target.client()
        for timer in client.iter_timers(status, None):
            click.echo(export_line(timer, client.attempts(timer["id"])))

    _call(target, fetch)


@cli.command("import", context_settings=CONTEXT)
@click.argument("source", type=click.File("r"))
@db_flag(
    "Database to import into: a file (created if missing; its daemon must be stopped) or a "
    "postgresql:// URL (nodes may run) [default: the configured one, as `timerd serve` uses]."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file to find the database in (env TIMERD_CONFIG).",
)
def import_(source: Any, db: Db | None, config_file: Path | None) -> None:
    """Import timers from a JSON Lines FILE (or - for stdin), keeping ids, times and states.

    \b
    Example:
      timerd import timers.jsonl --db ~/new/timerd.db
      timerd export --db old.db | timerd import - --db postgresql://timerd@db.example/timerd
    """
    if db is None:
        db = configured_db(config_file)
        click.echo(f"timerd: importing into {display_db(db)} (the configured database)", err=True)
    timers = _call(None, lambda: parse_lines(source))
    imported, skipped = _run(import_timers(db, timers))
    click.echo(f"imported {imported}, skipped {skipped}")


for command in (list_, service, backup, stats, nodes):  # commands in their own modules
    cli.add_command(command)


def main() -> None:
    """Entry point of the `timerd` console script."""
    cli(prog_name="timerd")
