"""The SQLite store's state: its connections and write queues, shared by its two halves.

`SqliteWriter` (timerd.store.sqlite.writer) owns the queue and the writer connection;
`SqliteReads` (timerd.store.sqlite.reads) the reader connections; `SqliteStore` opens and
closes them all. This class only declares what they share.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import aiosqlite

from timerd.errors import DatabaseError
from timerd.store.claims import LocalClaims
from timerd.store.lookups import CoalescedLookups
from timerd.store.sqlite.statements import Write


class SqliteParts:
    """What the writer half and the reader half of a SqliteStore both see."""

    path: Path
    claims: LocalClaims
    _synchronous: str
    _attempts_kept: int
    _write_queue_max: int
    _read_only: bool
    _on_commit: Callable[[float, int], None] | None
    _writer_conn: sqlite3.Connection | None
    _writer_thread: concurrent.futures.ThreadPoolExecutor | None
    _reader: aiosqlite.Connection | None
    _queue: deque[Write]
    _background: deque[Write]
    _has_work: asyncio.Event
    _writer_task: asyncio.Task[None] | None
    _checkpoint_task: asyncio.Task[None] | None
    _commits: int
    _last_api_writes: int
    _closing: bool
    _counter: aiosqlite.Connection | None
    _point_reader: sqlite3.Connection | None
    _lookups: CoalescedLookups

    def _open_plain(
        self, target: str, setup: Sequence[str], *, thread_bound: bool = True
    ) -> sqlite3.Connection:
        """Open a plain sqlite3 connection and run `setup`; DatabaseError if either fails.

        `thread_bound=False` for connections used from a worker thread other than the one
        that opened them (always one thread at a time).
        """
        try:
            conn = sqlite3.connect(
                target,
                isolation_level=None,
                uri=target.startswith("file:"),
                check_same_thread=thread_bound,
            )
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        try:
            for statement in setup:
                conn.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        return conn
