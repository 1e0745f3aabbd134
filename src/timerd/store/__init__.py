"""Durable storage of timers: the `Store` contract, its SQLite and PostgreSQL backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from timerd.cursor import Cursor
from timerd.store.base import IdempotencyRecord, Store
from timerd.store.postgres import PostgresDriverMissing, PostgresStore, is_postgres_url
from timerd.store.sqlite import SqliteStore

__all__ = [
    "Cursor",
    "IdempotencyRecord",
    "PostgresDriverMissing",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "is_postgres_url",
    "make_store",
    "open_store",
]

_SQLITE_ONLY = frozenset({"synchronous"})
_POSTGRES_ONLY = frozenset({"read_connections"})


def make_store(db: str | Path, **options: Any) -> SqliteStore | PostgresStore:
    """Return an unopened store for `db`: PostgreSQL for a `postgresql://` (or
    `postgres://`) URL, SQLite for anything else (a path).

    `options` are the backends' keyword arguments (`attempts_kept`, `write_queue_max`,
    `read_only`, `on_commit`, ...); one backend's own options are dropped for the other.
    Raises PostgresDriverMissing for a PostgreSQL URL without the driver installed.
    """
    if is_postgres_url(db):
        kept = {k: v for k, v in options.items() if k not in _SQLITE_ONLY}
        return PostgresStore(str(db), **kept)
    kept = {k: v for k, v in options.items() if k not in _POSTGRES_ONLY}
    return SqliteStore(Path(db), **kept)


async def open_store(db: str | Path, **options: Any) -> SqliteStore | PostgresStore:
    """Return the store for `db` (see `make_store`), opened: close it when done."""
    store = make_store(db, **options)
    await store.open()
    return store
