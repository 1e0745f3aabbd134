"""Durable storage of timers: the `Store` contract, its SQLite and PostgreSQL backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from timerd.config import is_postgres_url
from timerd.cursor import Cursor
from timerd.store.base import IdempotencyRecord, Store
from timerd.store.nodes import ClockSkew, LocalNodes, NodeInfo, NodeRegistry
from timerd.store.postgres import PostgresDriverMissing, PostgresStore, redact_dsn
from timerd.store.postgres_nodes import PostgresNodes
from timerd.store.sqlite import SqliteStore

__all__ = [
    "AnyStore",
    "ClockSkew",
    "Cursor",
    "IdempotencyRecord",
    "LocalNodes",
    "NodeInfo",
    "NodeRegistry",
    "PostgresDriverMissing",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "display_db",
    "is_postgres_url",
    "make_nodes",
    "make_store",
    "open_store",
]

AnyStore = SqliteStore | PostgresStore
"""A store of either backend, with what both have beyond the contract (import, export)."""

_SQLITE_ONLY = frozenset({"synchronous"})
_POSTGRES_ONLY = frozenset(
    {"read_connections", "nodes", "node_lease_s", "attempt_timeout_s", "idempotency_retention_s"}
)


def display_db(db: str | Path) -> str:
    """Return `db` as it may be printed or logged: a URL without its password, or the path."""
    return redact_dsn(db) if is_postgres_url(db) else str(db)


def make_store(db: str | Path, **options: Any) -> AnyStore:
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


async def open_store(db: str | Path, **options: Any) -> AnyStore:
    """Return the store for `db` (see `make_store`), opened: close it when done."""
    store = make_store(db, **options)
    await store.open()
    return store


def make_nodes(
    db: str | Path,
    *,
    node_id: str,
    version: str,
    lease_s: float,
    max_clock_skew_s: float,
    on_offset: Callable[[float], None] | None = None,
) -> NodeRegistry:
    """Return the node registry for `db`, not started: the `nodes` table on PostgreSQL; on
    SQLite, whose database one daemon owns, this daemon alone.

    `on_offset` gets each measure of this node's clock minus the database's (PostgreSQL).
    """
    if not is_postgres_url(db):
        return LocalNodes(node_id, version)
    return PostgresNodes(
        str(db),
        node_id=node_id,
        version=version,
        lease_s=lease_s,
        max_clock_skew_s=max_clock_skew_s,
        on_offset=on_offset,
    )
