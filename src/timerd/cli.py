"""The `timerd` command line: builds settings or a client, calls the library, prints.

Exit codes: 0 success, 1 the operation failed (not found, conflict, unreachable),
2 usage error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from timerd import __version__
from timerd.cli_errors import CliError
from timerd.client import DEFAULT_ADDR, Client, configured_client
from timerd.config import env_name, load_settings, setting_fields
from timerd.errors import ConfigError, TimerdError
from timerd.models import Status, Timer, redact_url
from timerd.store import SqliteStore
from timerd.transfer import export_line, export_store, import_timers, iter_store, parse_lines

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
STATUS_CHOICES = [*(s.value for s in Status), "all"]
_DURATION_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


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
    try:
        return asyncio.run(coro)
    except TimerdError as exc:
        raise CliError(str(exc)) from None


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except TimerdError as exc:
        raise CliError(str(exc)) from None


# shared option groups ---------------------------------------------------------------------


def addr_option(fn: F) -> F:
    """Add `--addr`, the daemon to talk to."""
    return click.option(
        "--addr",
        envvar="TIMERD_ADDR",
        default=DEFAULT_ADDR,
        show_default=True,
        help="URL of the running daemon (env TIMERD_ADDR).",
    )(fn)


def db_option(fn: F) -> F:
    """Add `--db`, a database to read directly instead of asking the daemon."""
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Read this database file directly, read-only, instead of asking the daemon.",
    )(fn)


def json_option(fn: F) -> F:
    """Add `--json` for scripts."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def _client(addr: str) -> Client:
    """Return a client for `addr` with the API token of the same config `serve` reads."""
    try:
        return configured_client(addr)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _check_source(ctx: click.Context, db: Path | None) -> None:
    source = ctx.get_parameter_source("addr")
    if db is not None and source not in (None, click.core.ParameterSource.DEFAULT):
        raise click.UsageError("give either --addr or --db, not both")


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
    from timerd.daemon import run  # the server's imports are not needed by other commands

    try:
        settings = load_settings(config_file=config_file, overrides=flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run(settings))


def parse_duration(text: str) -> float:
    """Parse `1h2m3s`, `90s`, `10m`, `1.5s` into seconds."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise click.BadParameter(f"{text!r} is not a duration like 1h2m3s, 10m or 90s")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def _time_body(
    in_: str | None,
    at: str | None,
    hours: int | None,
    minutes: int | None,
    seconds: float | None,
) -> dict[str, Any]:
    parts = [in_ is not None, at is not None, any(v is not None for v in (hours, minutes, seconds))]
    if sum(parts) > 1:
        raise click.UsageError("give one of --in, --at, or --hours/--minutes/--seconds")
    if in_ is not None:
        return {"seconds": parse_duration(in_)}
    if at is not None:
        return {"fire_at": at}
    if parts[2]:
        body: dict[str, Any] = {}
        for name, value in (("hours", hours), ("minutes", minutes), ("seconds", seconds)):
            if value is not None:
                body[name] = value
        return body
    raise click.UsageError("say when: --in 1h2m3s, --at INSTANT, or --hours/--minutes/--seconds")


@cli.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--in", "in_", metavar="DURATION", help="Delay like 1h2m3s, 10m or 90s.")
@click.option("--at", metavar="INSTANT", help="Due instant, RFC 3339 with an offset.")
@click.option("--hours", type=click.IntRange(min=0), help="Hours of delay.")
@click.option("--minutes", type=click.IntRange(min=0), help="Minutes of delay.")
@click.option("--seconds", type=click.FloatRange(min=0), help="Seconds of delay.")
@click.option("--idempotency-key", help="Create at most once for this key (24 h).")
@addr_option
def add(
    url: str,
    in_: str | None,
    at: str | None,
    hours: int | None,
    minutes: int | None,
    seconds: float | None,
    idempotency_key: str | None,
    addr: str,
) -> None:
    """Create a timer that POSTs to URL/<id>; print its id.

    \b
    Example:
      timerd add https://example.com/hook --in 4h0m1s
    """
    body = {"url": url, **_time_body(in_, at, hours, minutes, seconds)}
    timer_id = _call(lambda: _client(addr).create(body, idempotency_key))
    click.echo(timer_id)


def _fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _table(rows: list[dict[str, Any]]) -> None:
    headers = ["ID", "STATUS", "FIRE AT", "LEFT", "ATTEMPTS", "URL"]
    cells = [
        [
            r["id"],
            r["status"],
            _fmt_time(r["fire_at"]),
            f"{r['time_left']}s",
            str(r["attempts"]),
            redact_url(r["url"]),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


async def _read_db(db: Path, fn: Callable[[SqliteStore], Coroutine[Any, Any, T]]) -> T:
    store = SqliteStore(db, read_only=True)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


@cli.command("list", context_settings=CONTEXT)
@click.option(
    "--status",
    type=click.Choice(STATUS_CHOICES),
    default="all",
    show_default=True,
    help="Only timers in this status.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Show at most this many timers.",
)
@json_option
@addr_option
@db_option
@click.pass_context
def list_(
    ctx: click.Context, status: str, limit: int, as_json: bool, addr: str, db: Path | None
) -> None:
    """List timers by due time.

    \b
    Example:
      timerd list --status pending --limit 20
    """
    _check_source(ctx, db)
    if db is not None:
        wanted = None if status == "all" else Status(status)

        async def read(store: SqliteStore) -> list[Timer]:
            found: list[Timer] = []
            async for timer in iter_store(store, wanted):
                found.append(timer)
                if len(found) >= limit:
                    break
            return found

        now = time.time()
        rows = [t.to_json(now) for t in _run(_read_db(db, read))]
    else:
        rows = _call(lambda: list(_client(addr).iter_timers(status, limit)))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        _table(rows)
    else:
        click.echo("no timers", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@addr_option
@db_option
@click.pass_context
def show(ctx: click.Context, timer_id: str, as_json: bool, addr: str, db: Path | None) -> None:
    """Show one timer.

    \b
    Example:
      timerd show 3q2-F8nJrL1sYQ9xk0aVbw --json
    """
    _check_source(ctx, db)
    if db is not None:
        found = _run(_read_db(db, lambda store: store.get_timer(timer_id)))
        if found is None:
            raise CliError(f"no timer {timer_id}")
        data = found.to_json(time.time())
    else:
        data = _call(lambda: _client(addr).get(timer_id))
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
            value = _fmt_time(value)
        elif key == "url":
            value = redact_url(str(value))
        elif key == "time_left":
            value = f"{value}s"
        click.echo(f"{key + ':':<18}{'-' if value is None else value}")


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@addr_option
def fire(timer_id: str, as_json: bool, addr: str) -> None:
    """Fire a timer now instead of at its time (also retries a failed one).

    \b
    Example:
      timerd fire 3q2-F8nJrL1sYQ9xk0aVbw
    """
    data = _call(lambda: _client(addr).fire(timer_id))
    _echo_result(data, as_json, f"firing {timer_id}")


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@addr_option
def cancel(timer_id: str, as_json: bool, addr: str) -> None:
    """Cancel a timer that has not fired.

    \b
    Example:
      timerd cancel 3q2-F8nJrL1sYQ9xk0aVbw
    """
    data = _call(lambda: _client(addr).cancel(timer_id))
    _echo_result(data, as_json, f"cancelled {timer_id}")


def _echo_result(data: dict[str, Any], as_json: bool, line: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else line)


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@click.option("--in", "in_", metavar="DURATION", help="New delay from now, like 10m.")
@click.option("--at", metavar="INSTANT", help="New due instant, RFC 3339 with an offset.")
@click.option("--url", help="New webhook URL.")
@json_option
@addr_option
def reschedule(
    timer_id: str, in_: str | None, at: str | None, url: str | None, as_json: bool, addr: str
) -> None:
    """Move a pending or retrying timer, and/or change its URL.

    \b
    Example:
      timerd reschedule 3q2-F8nJrL1sYQ9xk0aVbw --in 10m
    """
    body: dict[str, Any] = {}
    if in_ is not None or at is not None:
        body.update(_time_body(in_, at, None, None, None))
    if url is not None:
        body["url"] = url
    if not body:
        raise click.UsageError("give --in, --at or --url")
    data = _call(lambda: _client(addr).reschedule(timer_id, body))
    _echo_result(data, as_json, f"{timer_id} due {_fmt_time(data['fire_at'])}")


@cli.command(context_settings=CONTEXT)
@click.argument("timer_id", metavar="ID")
@json_option
@addr_option
def attempts(timer_id: str, as_json: bool, addr: str) -> None:
    """Show a timer's delivery attempts, oldest first.

    \b
    Example:
      timerd attempts 3q2-F8nJrL1sYQ9xk0aVbw
    """
    rows = _call(lambda: _client(addr).attempts(timer_id))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no attempts yet", err=True)
    for r in rows:
        code = r["status_code"] if r["status_code"] is not None else "-"
        click.echo(
            f"#{r['attempt']}  {_fmt_time(r['started_at'])}  {r['duration_ms']:.1f} ms  "
            f"{code}  {r['outcome']}  {r['error'] or ''}".rstrip()
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
@click.pass_context
def export(ctx: click.Context, status: str, addr: str, db: Path | None) -> None:
    """Write timers as JSON Lines on stdout, one timer a line.

    \b
    Example:
      timerd export --db ~/old/timerd.db > timers.jsonl
    """
    _check_source(ctx, db)
    if db is not None:
        wanted = None if status == "all" else Status(status)

        async def dump(store: SqliteStore) -> None:
            async for line in export_store(store, wanted, time.time()):
                click.echo(line)

        _run(_read_db(db, dump))
        return

    def fetch() -> None:
        client = _client(addr)
        for timer in client.iter_timers(status, None):
            click.echo(export_line(timer, client.attempts(timer["id"])))

    _call(fetch)


@cli.command("import", context_settings=CONTEXT)
@click.argument("source", type=click.File("r"))
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Database to import into (created if missing); the daemon must be stopped.",
)
def import_(source: Any, db: Path) -> None:
    """Import timers from a JSON Lines FILE (or - for stdin), keeping ids, times and states.

    \b
    Example:
      timerd import timers.jsonl --db ~/new/timerd.db
    """
    timers = _call(lambda: parse_lines(source))
    imported, skipped = _run(import_timers(db, timers))
    click.echo(f"imported {imported}, skipped {skipped}")


def _register_extras() -> None:
    """Add the command groups that live in their own modules."""
    from timerd.cli_ops import backup, stats
    from timerd.cli_service import service

    for command in (service, backup, stats):
        cli.add_command(command)


_register_extras()


def main() -> None:
    """Entry point of the `timerd` console script."""
    cli(prog_name="timerd")
