"""Operator commands: `timerd backup` and `timerd stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click

from timerd.cli.db_option import Db, db_flag, pg_dump_hint
from timerd.cli.errors import CliError
from timerd.cli.target import addr_option, daemon_db_option, locate, verbose_option
from timerd.config import load_settings
from timerd.errors import ConfigError, TimerdError
from timerd.metrics_summary import Figures, NotTimerdMetrics, parse_figures
from timerd.store.backup import backup_database

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str) -> NoReturn:
    """Exit 1 with one line on stderr, like every other timerd command."""
    raise CliError(message)


@click.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@db_flag("Database to back up (default: the configured one, as `timerd serve` would use).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file to find the database in (env TIMERD_CONFIG).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace PATH if it exists (never the database's own files: db, -wal, -shm, lock).",
)
def backup(path: Path, db: Db | None, config_file: Path | None, force: bool) -> None:
    """Copy the database to PATH, safely, even while the daemon runs.

    Uses SQLite's online backup API from a separate read-only connection, so the daemon
    keeps serving and the copy holds every timer acknowledged before it started. The copy
    is written beside PATH, checked, then renamed into place (mode 0600). If PATH is a
    folder, the copy is named timerd-YYYYMMDD-HHMMSS.db inside it. An existing file is
    replaced only with --force.

    \b
    Example:
      timerd backup ~/backups/timerd-$(date +%F).db
    """
    if db is None:
        try:
            db = load_settings(config_file=config_file).db
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
    if not isinstance(db, Path):
        _fail(pg_dump_hint(db))
    try:
        result = backup_database(db, path, force=force)
    except TimerdError as exc:
        _fail(str(exc))
    click.echo(
        f"backed up {db} to {result.path}: {_size(result.size_bytes)}, "
        f"{result.timers} timers, in {result.duration_s:.2f} s"
    )


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    value = size_bytes / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@click.command(context_settings=CONTEXT)
@addr_option
@daemon_db_option
@verbose_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def stats(addr: str | None, db: Path | None, verbose: bool, as_json: bool) -> None:
    """Print the headline figures of the running daemon, read from its /metrics.

    Timers by status, creates and delivery totals, scheduler heap, requests in flight, and
    fire lateness p50/p99 (estimated from the histogram buckets, like Prometheus does).

    \b
    Example:
      timerd stats --addr http://127.0.0.1:8000
    """
    target = locate(addr, db, verbose=verbose)
    addr = target.addr
    try:
        text = target.client().stats()
    except TimerdError as exc:
        _fail(str(exc))
    try:
        figures = parse_figures(text)
    except NotTimerdMetrics as exc:
        _fail(f"{addr}/metrics did not answer like timerd: {exc}")
    if as_json:
        click.echo(json.dumps({"addr": addr, **figures.to_json()}, indent=2))
    else:
        click.echo(render_figures(addr, figures))


def render_figures(addr: str, figures: Figures) -> str:
    """Return the figures as aligned lines of text."""

    def pairs(items: dict[str, Any]) -> str:
        return ", ".join(f"{name} {value}" for name, value in items.items())

    lateness = (
        f"p50 {figures.lateness_text(0.5)}, p99 {figures.lateness_text(0.99)} "
        f"({figures.lateness_count} first attempts)"
    )
    overdue = (
        f"{figures.overdue_count} first attempts of timers due before they were created "
        "or while timerd was down (not counted in lateness)"
    )
    rows = [
        ("daemon", addr),
        ("timers", pairs(figures.timers)),
        ("created", str(figures.created)),
        (
            "deliveries",
            pairs(
                {
                    "delivered": figures.delivered,
                    "retried": figures.retried,
                    "failed": figures.failed,
                }
            ),
        ),
        ("scheduler", f"heap {figures.heap_size}, in flight {figures.in_flight}"),
        ("lateness", lateness),
        ("overdue", overdue),
    ]
    return "\n".join(f"{name:<11} {value}" for name, value in rows)
