"""`timerd list`: live timers first, soonest first, and a last line that says how to go on."""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import json
import math
import shlex
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from timerd.cli_errors import CliError
from timerd.cli_target import addr_option, locate, verbose_option
from timerd.cli_time import format_left, format_time
from timerd.errors import TimerdError
from timerd.models import LIVE_STATUSES, Status, Timer, redact_url
from timerd.store import SqliteStore

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


async def read_db(db: Path, fn: Callable[[SqliteStore], Coroutine[Any, Any, T]]) -> T:
    """Open `db` read-only, run `fn` on it, close it."""
    store = SqliteStore(db, read_only=True)
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


def encode_cursor(fire_at: float, timer_id: str) -> str:
    """Return the page cursor of a position, in the API's own format (so both accept it)."""
    raw = json.dumps([fire_at, timer_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, str]:
    """Parse a cursor of `timerd list` or of the API's `next_cursor`; BadParameter if not one."""
    try:
        at, tid = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(tid, str):
            raise ValueError
        if not math.isfinite(at):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise click.BadParameter(
            f"{text!r} is not a cursor from `timerd list`", param_hint="'--cursor'"
        ) from None
    return float(at), tid


def _wanted(status: str) -> list[Status | None]:
    if status == "live":
        live: list[Status | None] = [*sorted(LIVE_STATUSES)]
        return live
    return [None] if status == "all" else [Status(status)]


def _merged(pages: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Merge pages already ordered by (fire_at, id) and keep the first `limit`."""
    merged = heapq.merge(*pages, key=lambda r: (r["fire_at"], r["id"]))
    return [row for row, _ in zip(merged, range(limit), strict=False)]


def _from_db(db: Path, status: str, limit: int, cursor: str | None) -> list[dict[str, Any]]:
    after = decode_cursor(cursor) if cursor else None

    async def read(store: SqliteStore) -> list[list[Timer]]:
        return [await store.list_timers(s, limit, after) for s in _wanted(status)]

    now = time.time()
    pages = run_async(read_db(db, read))
    return _merged([[t.to_json(now) for t in page] for page in pages], limit)


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
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read this database file directly, read-only, instead of asking the daemon.",
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
    db: Path | None,
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
            decode_cursor(cursor)
        client = locate(addr, None, verbose=verbose).client()

        def fetch() -> list[dict[str, Any]]:
            api = ["all"] if status == "all" else [str(s) for s in _wanted(status)]
            return _merged([list(client.iter_timers(s, limit + 1, cursor)) for s in api], limit + 1)

        try:
            rows = fetch()
        except TimerdError as exc:
            raise CliError(str(exc)) from None
    more, rows = len(rows) > limit, rows[:limit]
    footer = _continue_line(ctx, encode_cursor(rows[-1]["fire_at"], rows[-1]["id"])) if more else ""
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
