"""Durable storage of timers: the `Store` contract and its SQLite backend."""

from timerd.store.base import Cursor, IdempotencyRecord, Store
from timerd.store.sqlite import SqliteStore

__all__ = ["Cursor", "IdempotencyRecord", "SqliteStore", "Store"]
