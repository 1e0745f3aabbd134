"""Durable storage of timers: the `Store` contract and its SQLite backend."""

from timerd.cursor import Cursor
from timerd.store.base import IdempotencyRecord, Store
from timerd.store.sqlite import SqliteStore

__all__ = ["Cursor", "IdempotencyRecord", "SqliteStore", "Store"]
