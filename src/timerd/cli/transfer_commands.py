"""`timerd export` and `timerd import`: every timer with its history, as JSON Lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from timerd.cli.db_option import Db, db_flag
from timerd.cli.list_command import read_db, run_async
from timerd.cli.options import (
    CONTEXT,
    STATUS_CHOICES,
    call,
    db_option,
)
from timerd.cli.target import (
    addr_option,
    configured_db,
    locate,
    verbose_option,
)
from timerd.models import Status
from timerd.store import AnyStore, display_db
from timerd.store.transfer import export_line, export_store, import_timers, parse_lines


@click.command(context_settings=CONTEXT)
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

        run_async(read_db(db, dump))
        return
    target = locate(addr, None, verbose=verbose)

    def fetch() -> None:
        client = target.client()
        for timer in client.iter_timers(status, None):
            click.echo(export_line(timer, client.attempts(timer["id"])))

    call(target, fetch)


@click.command("import", context_settings=CONTEXT)
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
    timers = call(None, lambda: parse_lines(source))
    imported, skipped = run_async(import_timers(db, timers))
    click.echo(f"imported {imported}, skipped {skipped}")
