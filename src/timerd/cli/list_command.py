"""`timerd list`: live timers first, soonest first, and a last line that says how to go on."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import click

from timerd.cli.db_option import Db, db_flag
from timerd.cli.errors import CliError
from timerd.cli.target import addr_option, locate, verbose_option
from timerd.cli.times import format_left, format_time
from timerd.cursor import Cursor, decode_cursor, encode_cursor
from timerd.errors import TimerdError, ValidationFailed
from timerd.models import LIVE_STATUSES, Status, Timer, redact_url
from timerd.store import AnyStore, make_store

T = TypeVar("T")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
LIST_STATUSES = [*(s.value for s in Status), "live", "all"]
DEFAULT_LIMIT = 100


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro`; a TimerdError becomes one error line and exit 1."""
    try:
        return asyncio.run(coro)
    except TimerdError as exc:
        raise CliError(str(exc)) from None


async def read_db(db: Db, fn: Callable[[AnyStore], Coroutine[Any, Any, T]]) -> T:
    """Open `db` (a file or a PostgreSQL URL) read-only, run `fn` on it, close it."""
    store = make_store(db, read_only=True, read_connections=1)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def render_table(headers: list[str], cells: Iterable[list[str]]) -> None:
    """Print aligned columns under a header row."""
    rows = list(cells)
    widths = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def parse_cursor(text: str) -> Cursor:
    """Parse a cursor of `timerd list` or of the API's `next_cursor`; BadParameter if not one."""
    try:
        return decode_cursor(text)
    except ValidationFailed:
        raise click.BadParameter(
            f"{text!r} is not a cursor from `timerd list`", param_hint="'--cursor'"
        ) from None


def statuses_of(status: str) -> frozenset[Status] | None:
    """Return the statuses a `--status` choice means (None: every status)."""
    if status == "all":
        return None
    return LIVE_STATUSES if status == "live" else frozenset({Status(status)})


def _from_db(db: Db, status: str, limit: int, cursor: str | None) -> list[dict[str, Any]]:
    after = parse_cursor(cursor) if cursor else None

    async def read(store: AnyStore) -> list[Timer]:
        return await store.list_timers(statuses_of(status), limit, after)

    now = time.time()
    return [t.to_json(now) for t in run_async(read_db(db, read))]


def _continue_line(ctx: click.Context, cursor: str) -> str:
    args = ["timerd", "list"]
    for name in ("status", "limit", "addr", "db"):
        value = ctx.params.get(name)
        source = ctx.get_parameter_source(name)
        if value is not None and source is not click.core.ParameterSource.DEFAULT:
            args += [f"--{name}", str(value)]
    return f"more timers; the next page: {shlex.join([*args, '--cursor', cursor])}"


@click.command("list", context_settings=CONTEXT)
@click.option(
    "--status",
    type=click.Choice(LIST_STATUSES),
    default="live",
    show_default=True,
    help="Only timers in this status; live is pending and retrying.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Show at most this many timers.",
)
@click.option("--cursor", help="Continue after the last timer of a previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@addr_option
@db_flag(
    "Read this database file (or postgresql:// URL) directly, read-only, instead of asking "
    "the daemon."
)
@verbose_option
@click.pass_context
def list_(
    ctx: click.Context,
    status: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
    addr: str | None,
    db: Db | None,
    verbose: bool,
) -> None:
    """List timers, soonest first: the live ones (pending, retrying) unless --status says.

    \b
    Example:
      timerd list --status all --limit 20
    """
    if db is not None:
        if addr is not None:
            raise click.UsageError("give either --addr or --db, not both")
        rows = _from_db(db, status, limit + 1, cursor)
    else:
        if cursor:
            parse_cursor(cursor)
        client = locate(addr, None, verbose=verbose).client()

        try:
            rows = list(client.iter_timers(status, limit + 1, cursor))
        except TimerdError as exc:
            raise CliError(str(exc)) from None
    more, rows = len(rows) > limit, rows[:limit]
    footer = (
        _continue_line(ctx, encode_cursor((rows[-1]["fire_at"], rows[-1]["id"]))) if more else ""
    )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        if footer:
            click.echo(footer, err=True)
        return
    if not rows:
        click.echo(f"no {status} timers" if status != "all" else "no timers", err=True)
        return
    render_table(
        ["ID", "STATUS", "FIRE AT", "LEFT", "ATTEMPTS", "URL"],
        (
            [
                r["id"],
                r["status"],
                format_time(r["fire_at"]),
                format_left(r["time_left"]),
                str(r["attempts"]),
                redact_url(r["url"]),
            ]
            for r in rows
        ),
    )
    if footer:
        click.echo(footer)
