"""Which daemon a management command talks to, found the way the user means it.

`--addr`/`TIMERD_ADDR` when given; otherwise the daemon that holds the configured (or `--db`)
database, from the address it records beside it; otherwise the default address. `--verbose`
says which one and why, and every error line from a daemon names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from timerd.cli.db_option import Db, db_flag
from timerd.cli.errors import CliError
from timerd.cli.http_client import (
    DEFAULT_ADDR,
    BadAddress,
    Client,
    configured_client,
    normalize_addr,
)
from timerd.config import is_postgres_url, load_settings
from timerd.errors import ConfigError
from timerd.store.address_file import read_record

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Target:
    """A daemon's base URL and how it was chosen (for `--verbose`)."""

    addr: str
    why: str

    def client(self) -> Client:
        """Return a client for it with the API token of the config `serve` reads."""
        try:
            return configured_client(self.addr)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None


def addr_option(fn: F) -> F:
    """Add `--addr` (no default, so the configured database's daemon can be found)."""
    return click.option(
        "--addr",
        envvar="TIMERD_ADDR",
        default=None,
        metavar="URL",
        help="URL (or HOST:PORT) of the daemon, env TIMERD_ADDR [default: the daemon of the "
        f"configured database, else {DEFAULT_ADDR}].",
    )(fn)


def daemon_db_option(fn: F) -> F:
    """Add `--db` meaning: talk to the daemon that runs on this database."""
    return db_flag(
        "Talk to the daemon running on this database file (found from the address it "
        "records; not for a postgresql:// URL, which nodes share: give --addr)."
    )(fn)


def verbose_option(fn: F) -> F:
    """Add `--verbose`: say which daemon the command talks to."""
    return click.option(
        "--verbose", "-v", is_flag=True, help="Say which daemon this talks to, and why."
    )(fn)


def locate(addr: str | None, db: Db | None, *, verbose: bool = False) -> Target:
    """Return the daemon the user means (see the module docstring); CliError if there is none."""
    if addr is not None and db is not None:
        raise click.UsageError("give either --addr or --db, not both")
    target = _locate(addr, db)
    if verbose:
        click.echo(f"timerd: talking to {target.addr} ({target.why})", err=True)
    return target


def _locate(addr: str | None, db: Db | None) -> Target:
    if addr is not None:
        try:
            return Target(normalize_addr(addr), "from --addr or TIMERD_ADDR")
        except BadAddress as exc:
            raise click.BadParameter(str(exc), param_hint="'--addr'") from None
    if is_postgres_url(db):
        raise click.UsageError(
            "--db finds the daemon of a SQLite file; a postgresql:// database is shared by "
            "nodes that record no address: give --addr URL of one of them"
        )
    given = db is not None
    if db is None:
        db = configured_db()
    if not isinstance(db, Path):  # a URL: nodes of a shared database record no address
        return Target(
            DEFAULT_ADDR,
            "the default address; the configured database is PostgreSQL, whose nodes record "
            "no address (give --addr to choose a node)",
        )
    record = read_record(db)
    if record is not None and record.live:
        return Target(record.url, f"the daemon of {db}, recorded in {record.path}")
    if given:
        stale = (
            f" (its address record {record.path} is stale: pid {record.pid} is gone)"
            if record is not None
            else ""
        )
        raise CliError(
            f"no timerd is running on {db}{stale}; start one with `timerd serve --db {db}`, "
            "or give --addr"
        )
    if record is not None:
        return Target(
            DEFAULT_ADDR,
            f"the default address; ignored the stale record {record.path} of a daemon "
            f"(pid {record.pid}) that is gone",
        )
    return Target(DEFAULT_ADDR, f"the default address; no daemon recorded for {db}")


def configured_db(config_file: Path | None = None) -> Db:
    """Return the database `timerd serve` would use with the same configuration."""
    try:
        return load_settings(config_file=config_file).db
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
