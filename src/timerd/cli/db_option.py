"""`--db` on the command line: a SQLite file, or a `postgresql://` URL kept as it was typed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from timerd.config import is_postgres_url
from timerd.store import display_db

F = TypeVar("F", bound=Callable[..., Any])

Db = Path | str
"""A SQLite path, or a PostgreSQL URL (a string: Path() would collapse its `//`)."""


def to_db(ctx: click.Context, param: click.Parameter, value: str | None) -> Db | None:
    """Turn a `--db` value into a Db: URLs stay strings, anything else is a file path."""
    if value is None or is_postgres_url(value):
        return value
    if not value:
        raise click.BadParameter("a database file or postgresql:// URL is required", ctx, param)
    path = Path(value).expanduser()
    if path.is_dir():
        raise click.BadParameter(f"{value!r} is a folder, not a database file", ctx, param)
    return path


def db_flag(help: str) -> Callable[[F], F]:
    """Return the `--db PATH|URL` option with this help."""
    return click.option("--db", metavar="PATH|URL", default=None, callback=to_db, help=help)


def pg_dump_hint(url: str) -> str:
    """The line `timerd backup` gives for a PostgreSQL URL: pg_dump is the tool for that."""
    return (
        "timerd backup copies a SQLite database; back up PostgreSQL with pg_dump, "
        f"for example: pg_dump -Fc '{display_db(url)}' > timerd.dump"
    )
