"""The SQLite backend: one WAL file, a group-committing writer and separate readers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import aiosqlite

from timerd.cursor import Cursor
from timerd.errors import DatabaseError, TimerdError
from timerd.models import Timer
from timerd.store.claims import ClaimResult, LocalClaims, check_due
from timerd.store.folders import make_private_dirs
from timerd.store.lookups import CoalescedLookups
from timerd.store.migrations import migrate
from timerd.store.sqlite.reads import SqliteReads
from timerd.store.sqlite.statements import (
    Write,
)
from timerd.store.sqlite.writer import SqliteWriter

log = logging.getLogger(__name__)


def prepare_file(path: Path, synchronous: str = "full") -> None:
    """Create the folder (0700) and file (0600) if missing, switch to WAL and migrate.

    Blocking: run it in a thread. Raises DatabaseError for a file that is not a timerd
    database, is corrupt or cannot be opened; never overwrites one.
    """
    try:
        make_private_dirs(path.parent)
        if not path.exists():
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise DatabaseError(f"cannot create database {path}: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from None
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseError(f"cannot switch {path} to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"database {path} cannot be used: {exc}") from None
    finally:
        conn.close()


class SqliteStore(SqliteWriter, SqliteReads):
    """The `Store` contract on one SQLite file in WAL mode."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        attempts_kept: int = 20,
        write_queue_max: int = 50_000,
        read_only: bool = False,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        self.path = path
        self.claims = LocalClaims()  # one process owns a SQLite database (see locking)
        self.shared = False
        self._synchronous = synchronous
        self._attempts_kept = attempts_kept
        self._write_queue_max = write_queue_max
        self._read_only = read_only
        self._on_commit = on_commit
        # The writer is a plain sqlite3 connection on a thread of its own: a whole group
        # commit runs there in one call. Through aiosqlite each statement would be a trip
        # between threads, and under load every trip waits for the event loop's next turn.
        self._writer_conn: sqlite3.Connection | None = None
        self._writer_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: deque[Write] = deque()  # the API's writes: first in every commit
        self._background: deque[Write] = deque()  # outcomes and purges: a bounded share
        self._has_work = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._commits = 0
        self._last_api_writes = 0  # in the last batch: many means clients write concurrently
        self._closing = False
        self._counter: aiosqlite.Connection | None = None
        self._point_reader: sqlite3.Connection | None = None
        self._lookups = CoalescedLookups(self.get_timers)

    @property
    def queued_writes(self) -> int:
        """Return how many writes wait for a commit."""
        return len(self._queue) + len(self._background)

    async def open(self) -> None:
        """Open (creating and migrating if needed); read-only stores never write."""
        if self._read_only:
            if not self.path.exists():
                raise DatabaseError(f"no database at {self.path}")
            self._reader = await self._connect(f"file:{self.path}?mode=ro")
            try:
                self._counter = await self._connect(f"file:{self.path}?mode=ro")
                self._point_reader = self._open_point_reader(f"file:{self.path}?mode=ro")
                await self._check_readable()
            except BaseException:
                await self.close()
                raise
            return
        await asyncio.to_thread(prepare_file, self.path, self._synchronous)
        try:
            self._writer_thread = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="timerd-writer"
            )
            self._writer_conn = await self._on_writer(self._open_writer)
            self._reader = await self._connect(str(self.path))
            await self._reader.execute("PRAGMA query_only = 1")
            self._counter = await self._connect(str(self.path))
            await self._counter.execute("PRAGMA query_only = 1")
            self._point_reader = self._open_point_reader(str(self.path))
        except BaseException:
            await self.close()
            raise
        self._writer_task = asyncio.create_task(self._write_loop(), name="timerd-writer")
        self._checkpoint_task = asyncio.create_task(
            self._checkpoint_loop(), name="timerd-checkpoint"
        )

    async def _connect(self, target: str) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(
                target, isolation_level=None, uri=target.startswith("file:")
            )
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            await conn.execute("PRAGMA cache_size = -16000")
        except sqlite3.Error as exc:
            await conn.close()  # its thread would otherwise keep the process alive
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        return conn

    async def _check_readable(self) -> None:
        try:
            await self._read("SELECT count(*) FROM timers LIMIT 1", ())
        except TimerdError:
            raise DatabaseError(f"{self.path} is not a readable timerd database") from None

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close both connections."""
        self._closing = True
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
            self._checkpoint_task = None
        if self._writer_task is not None:
            self._has_work.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        for reader in (self._reader, self._counter):
            if reader is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await reader.close()
        self._reader = self._counter = None
        if self._point_reader is not None:
            self._point_reader.close()
            self._point_reader = None
        if self._writer_thread is not None:
            if self._writer_conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    await self._on_writer(self._writer_conn.close)
            self._writer_thread.shutdown(wait=True)
            self._writer_thread = None
        self._writer_conn = None

    # claims: one process owns the file, so they live in this process -----------------------

    async def claim_due(self, due: Sequence[Cursor]) -> ClaimResult:
        """Claim in this process the due entries whose rows still say so (one owner: no lease)."""
        rows = {t.id: t for t in await self.get_timers([tid for _, tid in due])}
        return check_due(due, rows, self.claims)

    async def release_claims(self, timer_ids: Sequence[str]) -> None:
        """Free this process's claims on `timer_ids`."""
        for timer_id in timer_ids:
            self.claims.release(timer_id)

    async def change_timer(self, before: Timer, after: Timer) -> bool:
        """Replace the row by `after` if its status is still `before`'s (claims do the rest)."""
        return await self.update_timer(after, frozenset({before.status}))

    def watch_ownership(self, changed: Callable[[], None]) -> None:
        """Nothing to watch: this process owns every timer of the file."""
