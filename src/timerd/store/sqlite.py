"""The SQLite backend: one WAL file, a group-committing writer and a separate reader.

Every write goes through one queue. A single writer task takes everything queued, runs it
in one transaction and resolves each caller's future after COMMIT, so one fsync covers many
creates and delivery outcomes. Reads use their own connection, which WAL lets run beside
the writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from timerd.cursor import Cursor
from timerd.errors import Conflict, DatabaseError, TimerdError, Unavailable
from timerd.models import LIVE_STATUSES, Attempt, Outcome, Status, Timer
from timerd.store.base import IdempotencyRecord
from timerd.store.claims import ClaimResult, LocalClaims, check_due
from timerd.store.folders import make_private_dirs
from timerd.store.migrations import migrate

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_OPS_PER_COMMIT = 4000
BACKGROUND_ROWS_PER_COMMIT = 250
"""Delivery outcomes (and purges) per commit at most: they share the writer with creates,
which go first, and a short commit keeps a create's wait short (catch-up create p99)."""
GATHER_TURNS = 3
GATHER_FROM = 8
GATHER_ENOUGH = 256
"""While the API writes concurrently (the last commit carried GATHER_FROM of its writes or
more), the writer lets the event loop turn GATHER_TURNS times before it takes a batch,
unless GATHER_ENOUGH writes already wait. A request read in one turn reaches the queue
two turns later (the protocol's wakeup, then the handler's task), and a commit's fsync
costs as much CPU as thirty inserts on this VM: at 64 clients, 30 -> 56 rows a commit
cut the writer's CPU per create from 17 to 13 us. Not otherwise: turns of a busy loop
are long (catch-up: a lone create waited 5 ms more at the median)."""
_BACKGROUND = frozenset({"attempts", "purge"})
POINT_READ_BUSY_MS = 20
"""How long a lookup on the event loop's thread may wait for a lock before it goes to the
reader thread (WAL readers almost never wait)."""
CHECKPOINT_EVERY_S = 0.5
WRITER_CHECKPOINT_PAGES = 20_000
"""The writer checkpoints by itself only if the background checkpoints fall this far behind."""
_LIVE = tuple(s.value for s in LIVE_STATUSES)

_COLUMNS = ", ".join(Timer._fields)  # so that a Timer is its own row (see _row)
_COLUMN_COUNT = len(Timer._fields)
_INSERT = f"INSERT INTO timers ({_COLUMNS})"
_INSERT_MISSING = f"INSERT OR IGNORE INTO timers ({_COLUMNS})"
_INSERT_HISTORY = (
    "INSERT INTO attempts (timer_id, seq, attempt, started_at, duration_ms, status_code, error, "
    "outcome)"
)
_SET_STATE = (
    "status = ?, next_at = ?, attempts = ?, updated_at = ?, fired_at = ?, "
    "last_status_code = ?, last_error = ?"
)
# Delivery outcomes are inserted into a temp view whose INSTEAD OF trigger applies each
# row and stores nothing: one multi-row INSERT step per commit does all the work in C.
# Every sqlite3 call hands the GIL to and from this thread, and with the event loop busy
# each hand-back waits for it: seven set-wise statements a commit spent most of a
# catch-up commit's time waiting so.
_OUTCOME_COLUMNS = (
    "id, url, fire_at, status, next_at, attempts, updated_at, fired_at, last_status_code, "
    "last_error, attempt, started_at, duration_ms, outcome"
)
_OUTCOME_WIDTH = len(_OUTCOME_COLUMNS.split(", "))
_INSERT_OUTCOMES = f"INSERT INTO temp.outcomes ({_OUTCOME_COLUMNS})"
_CREATE_OUTCOMES = "CREATE TEMP VIEW IF NOT EXISTS outcomes AS SELECT " + ", ".join(
    f"NULL AS {column}" for column in _OUTCOME_COLUMNS.split(", ")
)
# What the trigger runs for each outcome, in order: the history entry takes seq
# history_seq + 1; a late outcome (the timer is no longer live) only moves the seq; a
# live timer takes the outcome and the seq in one rewrite; history beyond `kept` goes.
# Each statement finds its rows by primary key (EXPLAIN QUERY PLAN pinned in the tests).
OUTCOME_STEPS = (
    "INSERT INTO attempts (timer_id, seq, attempt, started_at, duration_ms, status_code, "
    "error, outcome) SELECT NEW.id, history_seq + 1, NEW.attempt, NEW.started_at, "
    "NEW.duration_ms, NEW.last_status_code, NEW.last_error, NEW.outcome "
    "FROM timers WHERE id = NEW.id",
    "UPDATE timers SET history_seq = history_seq + 1 "
    f"WHERE id = NEW.id AND status NOT IN {_LIVE!r}",
    "UPDATE timers SET url = NEW.url, fire_at = NEW.fire_at, status = NEW.status, "
    "next_at = NEW.next_at, attempts = NEW.attempts, updated_at = NEW.updated_at, "
    "fired_at = NEW.fired_at, last_status_code = NEW.last_status_code, "
    "last_error = NEW.last_error, history_seq = history_seq + 1 "
    f"WHERE id = NEW.id AND status IN {_LIVE!r}",
    "DELETE FROM attempts WHERE timer_id = NEW.id "
    "AND seq <= (SELECT history_seq FROM timers WHERE id = NEW.id) - {kept}",
)


def outcome_trigger(kept: int) -> str:
    """The temp trigger that applies each outcome row; `kept`: history entries per timer."""
    body = " ".join(step.format(kept=int(kept)) + ";" for step in OUTCOME_STEPS)
    head = "CREATE TEMP TRIGGER IF NOT EXISTS apply_outcome INSTEAD OF INSERT ON outcomes"
    return f"{head} BEGIN {body} END"


_ROWS_PER_STATEMENT = 500
"""Rows per multi-row INSERT: one sqlite3 step (and one GIL hand-off) inserts them all."""


def _values(width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * rows)


def _insert_rows(
    conn: sqlite3.Connection, head: str, width: int, rows: Sequence[tuple[Any, ...]]
) -> int:
    """Insert `rows` with multi-row VALUES statements; return how many rows were inserted."""
    inserted = 0
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        params = [value for row in chunk for value in row]
        cursor = conn.execute(f"{head} VALUES {_values(width, len(chunk))}", params)
        inserted += cursor.rowcount
    return inserted


def _one_statement(batch: list[_Write]) -> tuple[str, int, list[tuple[Any, ...]]] | None:
    """The batch as one INSERT, if it is only creates (no keys) or only delivery outcomes.

    Every sqlite3 call hands the GIL away and must win it back from a busy event loop,
    which on a shared core takes up to a switch interval (5 ms): BEGIN, INSERT and COMMIT
    are three such trips, one autocommit INSERT is one.
    """
    kind = batch[0].kind
    if kind == "insert":
        if any(w.kind != "insert" or w.args[1] is not None for w in batch):
            return None
        rows: list[tuple[Any, ...]] = [_row(t) for w in batch for t in w.args[0]]
        head, width = _INSERT, _COLUMN_COUNT
    elif kind == "attempts":
        if any(w.kind != "attempts" for w in batch):
            return None
        rows = _outcome_rows([outcome for w in batch for outcome in w.args[0]])
        head, width = _INSERT_OUTCOMES, _OUTCOME_WIDTH
    else:
        return None
    return (head, width, rows) if 0 < len(rows) <= _ROWS_PER_STATEMENT else None


def _row(timer: Timer) -> tuple[Any, ...]:
    if timer.updated_at:  # a Timer is already its row, fields in column order
        return timer
    return (
        timer.id,
        timer.url,
        timer.fire_at,
        timer.created_at,
        timer.status.value,
        timer.next_at,
        timer.attempts,
        timer.updated_at or timer.created_at,
        timer.fired_at,
        timer.last_status_code,
        timer.last_error,
    )


def _state(timer: Timer) -> tuple[Any, ...]:
    return (
        timer.status.value,
        timer.next_at,
        timer.attempts,
        timer.updated_at,
        timer.fired_at,
        timer.last_status_code,
        timer.last_error,
    )


def _outcome_rows(outcomes: list[tuple[Timer, Attempt]]) -> list[tuple[Any, ...]]:
    return [
        (
            t.id,
            t.url,
            t.fire_at,
            *_state(t),
            a.attempt,
            a.started_at,
            a.duration_ms,
            a.outcome.value,
        )
        for t, a in outcomes
    ]


def _import_records(
    conn: sqlite3.Connection, records: Sequence[tuple[Timer, Sequence[Attempt]]]
) -> int:
    """Insert the new timers of `records` and their histories; return how many."""
    ids = [timer.id for timer, _ in records]
    existing: set[str] = set()
    for start in range(0, len(ids), _ROWS_PER_STATEMENT):
        chunk = ids[start : start + _ROWS_PER_STATEMENT]
        marks = ", ".join("?" for _ in chunk)
        existing.update(
            r[0] for r in conn.execute(f"SELECT id FROM timers WHERE id IN ({marks})", chunk)
        )
    fresh: dict[str, tuple[Timer, Sequence[Attempt]]] = {}
    for timer, history in records:
        if timer.id not in existing:
            fresh.setdefault(timer.id, (timer, history))
    _insert_rows(conn, _INSERT, _COLUMN_COUNT, [_row(timer) for timer, _ in fresh.values()])
    history_rows = [
        (tid, seq, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.outcome.value)
        for tid, (_, history) in fresh.items()
        for seq, a in enumerate(history, start=1)
    ]
    _insert_rows(conn, _INSERT_HISTORY, 8, history_rows)
    # the next outcome takes the seq after the imported ones (see OUTCOME_STEPS)
    conn.executemany(
        "UPDATE timers SET history_seq = ? WHERE id = ?",
        [(len(history), tid) for tid, (_, history) in fresh.items() if history],
    )
    return len(fresh)


def _exact(column: str) -> str:
    """A REAL column as text that round-trips exactly; JSON itself keeps only 15 digits.

    `%!.17g`: the `!` lifts SQLite's 16-digit cap; 17 digits identify any double.
    """
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE printf('%!.17g', {column}) END"


# Multi-row reads come back as ONE row holding a JSON array: Python's sqlite3 releases and
# retakes the GIL around every step, and with the event loop busy each retake waits for it
# (1000 rows measured 2.2 s under load, 14 ms as one JSON row).
_TIMER_JSON = (
    f"json_array(id, url, {_exact('fire_at')}, {_exact('created_at')}, status, "
    f"{_exact('next_at')}, attempts, {_exact('updated_at')}, {_exact('fired_at')}, "
    "last_status_code, last_error) AS j"
)


def list_query(statuses: int, after: bool) -> str:
    """The listing SELECT: per status, one bounded range of `timers_status_fire`, merged.

    Parameters: `(status, [fire_at, id,] limit)` for each status, then the page limit.
    """
    where = "status = ?" + (" AND (fire_at, id) > (?, ?)" if after else "")
    arm = (
        f"SELECT * FROM (SELECT {_TIMER_JSON}, fire_at, id FROM timers WHERE {where} "
        "ORDER BY fire_at, id LIMIT ?)"
    )
    return f"SELECT j FROM ({' UNION ALL '.join([arm] * statuses)}) ORDER BY fire_at, id LIMIT ?"


_STATUS = {s.value: s for s in Status}  # a dict lookup: Status(text) goes through EnumType


def _timer_from_row(row: tuple[Any, ...]) -> Timer:
    """A row of the timer columns in field order (REALs come back as the same floats)."""
    return Timer._make((*row[:4], _STATUS[row[4]], *row[5:]))


def _opt(value: str | None) -> float | None:
    return None if value is None else float(value)


def _timer(row: list[Any]) -> Timer:
    (tid, url, fire_at, created_at, status, next_at, attempts, updated_at, fired_at, code, err) = (
        row
    )
    return Timer(
        id=tid,
        url=url,
        fire_at=float(fire_at),
        created_at=float(created_at),
        status=_STATUS[status],
        next_at=_opt(next_at),
        attempts=attempts,
        updated_at=float(updated_at),
        fired_at=_opt(fired_at),
        last_status_code=code,
        last_error=err,
    )


@dataclass(slots=True)
class _Write:
    """One queued write: its kind, its arguments and the caller waiting for COMMIT."""

    kind: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any] = field(repr=False)


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


class SqliteStore:
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
        # between threads, and under load every trip waits for the event loop's next turn
        # (a burst's commits measured ~200 ms each that way).
        self._writer_conn: sqlite3.Connection | None = None
        self._writer_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: deque[_Write] = deque()  # the API's writes: first in every commit
        self._background: deque[_Write] = deque()  # outcomes and purges: a bounded share
        self._has_work = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._commits = 0
        self._last_api_writes = 0  # in the last batch: many means clients write concurrently
        self._closing = False
        self._counter: aiosqlite.Connection | None = None
        self._point_reader: sqlite3.Connection | None = None
        self._lookups: dict[str, list[asyncio.Future[Timer | None]]] = {}
        self._lookup_task: asyncio.Task[None] | None = None

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

    # writes -------------------------------------------------------------------------------

    async def insert_timers(
        self, timers: Sequence[Timer], idempotency: IdempotencyRecord | None = None
    ) -> None:
        """Insert timers (and the idempotency record) atomically; return once committed."""
        await self._submit("insert", (list(timers), idempotency), bounded=True)

    async def insert_missing(self, timers: Sequence[Timer]) -> int:
        """Insert timers whose ids are new, in one transaction; return how many."""
        result: int = await self._submit("insert_missing", (list(timers),), bounded=False)
        return result

    async def import_missing(self, records: Sequence[tuple[Timer, Sequence[Attempt]]]) -> int:
        """Insert the timers whose ids are new, each with its delivery history, at once.

        An id that exists, or came earlier in `records`, is skipped with its history.
        Returns how many timers were inserted.
        """
        result: int = await self._submit("import", (list(records),), bounded=False)
        return result

    async def update_timer(self, timer: Timer, expect: frozenset[Status]) -> bool:
        """Replace the row by `timer` if its stored status is in `expect`."""
        result: bool = await self._submit("update_if", (timer, expect), bounded=False)
        return result

    async def record_attempts(self, outcomes: Sequence[tuple[Timer, Attempt]]) -> None:
        """Store delivery outcomes and their history entries in the next group commit."""
        if outcomes:
            await self._submit("attempts", (list(outcomes),), bounded=False)

    async def purge_idempotency(self, before: float) -> int:
        """Forget idempotency records created before `before`."""
        result: int = await self._submit("purge", (before,), bounded=False)
        return result

    async def _submit(self, kind: str, args: tuple[Any, ...], *, bounded: bool) -> Any:
        if self._writer_task is None or self._closing:
            raise Unavailable("the store is closed or read-only")
        if bounded and len(self._queue) >= self._write_queue_max:
            raise Unavailable("too many writes are waiting for the disk; retry shortly")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        (self._background if kind in _BACKGROUND else self._queue).append(
            _Write(kind, args, future)
        )
        self._has_work.set()
        return await future

    async def _write_loop(self) -> None:
        """Commit everything queued, batch after batch, until closed and drained."""
        while True:
            if not self._queue and not self._background:
                if self._closing:
                    return
                self._has_work.clear()
                await self._has_work.wait()
                continue
            if self._last_api_writes >= GATHER_FROM and 0 < len(self._queue) < GATHER_ENOUGH:
                for _ in range(GATHER_TURNS):
                    await asyncio.sleep(0)
            batch = self._next_batch()
            try:
                await self._commit_batch(batch)
            except Exception:  # the loop guard: log, fail nobody silently, carry on
                log.exception("writer failed on a batch of %d writes", len(batch))
                for write in batch:
                    if not write.future.done():
                        write.future.set_exception(Unavailable("the write could not be committed"))

    def _next_batch(self) -> list[_Write]:
        """The API's writes first, then background writes up to their share of a commit."""
        queue, background = self._queue, self._background
        batch = [queue.popleft() for _ in range(min(len(queue), MAX_OPS_PER_COMMIT))]
        self._last_api_writes = len(batch)
        rows = 0
        while background and len(batch) < MAX_OPS_PER_COMMIT:
            head = background[0]
            size = len(head.args[0]) if head.kind == "attempts" else 1
            if rows and rows + size > BACKGROUND_ROWS_PER_COMMIT:
                break
            batch.append(background.popleft())
            rows += size
        return batch

    async def _commit_batch(self, batch: list[_Write]) -> None:
        started = time.perf_counter()
        try:
            results = await self._transaction(batch)
        except sqlite3.Error as exc:
            if len(batch) == 1 or not isinstance(exc, sqlite3.IntegrityError):
                # a busy, full or failing disk fails every write alike, and at once
                for write in batch:
                    self._settle_error(write, exc)
                return
            # one write broke a constraint: each alone, so only the culprit fails
            for write in batch:
                try:
                    (result,) = await self._transaction([write])
                except sqlite3.Error as single_exc:
                    self._settle_error(write, single_exc)
                else:
                    if not write.future.done():
                        write.future.set_result(result)
            return
        self._commits += 1
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        for write, result in zip(batch, results, strict=True):
            if not write.future.done():
                write.future.set_result(result)

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database beside the writer, not inside its commits.

        SQLite's automatic checkpoint runs in the COMMIT that crosses its threshold, and
        with synchronous=full that commit waited for the database file's fsync too: up to
        a quarter second during catch-up, with every create in it waiting. A PASSIVE
        checkpoint on its own connection and thread never blocks the writer; the writer's
        own automatic checkpoint stays as a backstop at WRITER_CHECKPOINT_PAGES.
        """
        try:
            conn = await asyncio.to_thread(self._open_checkpointer)
        except DatabaseError as exc:
            log.warning("no background checkpoints (the writer checkpoints itself): %s", exc)
            return
        try:
            seen = self._commits
            while True:
                await asyncio.sleep(CHECKPOINT_EVERY_S)
                if self._commits == seen:
                    continue
                seen = self._commits
                job = asyncio.ensure_future(
                    asyncio.to_thread(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
                )
                try:
                    await asyncio.shield(job)
                except asyncio.CancelledError:
                    # closing: the thread cannot be interrupted, and closing the connection
                    # under a running checkpoint would pull it from under SQLite
                    with contextlib.suppress(Exception):
                        await job
                    raise
                except sqlite3.Error as exc:  # busy or failing disk: the backstop remains
                    log.debug("background checkpoint skipped: %s", exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                await asyncio.to_thread(conn.close)

    def _open_checkpointer(self) -> sqlite3.Connection:
        return self._open_plain(
            str(self.path),
            ["PRAGMA busy_timeout = 1000", f"PRAGMA synchronous = {self._synchronous}"],
            thread_bound=False,
        )

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

    def _settle_error(self, write: _Write, exc: sqlite3.Error) -> None:
        if write.future.done():
            return
        if isinstance(exc, sqlite3.IntegrityError):
            error: TimerdError = Conflict("a timer with that id (or that key) already exists")
        else:
            log.error("write failed: %s", exc)
            error = Unavailable(f"the database cannot take writes now: {exc}", retry_after_s=2)
        write.future.set_exception(error)

    async def _on_writer(self, fn: Callable[[], _T]) -> _T:
        """Run `fn()` on the writer thread, the only thread that touches the writer."""
        assert self._writer_thread is not None, "the store is not open for writing"
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, fn)

    def _writer(self) -> sqlite3.Connection:
        assert self._writer_conn is not None, "the store is not open for writing"
        return self._writer_conn

    def _open_writer(self) -> sqlite3.Connection:
        setup = [
            "PRAGMA busy_timeout = 5000",
            f"PRAGMA synchronous = {self._synchronous}",
            "PRAGMA cache_size = -16000",
            f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}",
            _CREATE_OUTCOMES,
            outcome_trigger(self._attempts_kept),
        ]
        return self._open_plain(str(self.path), setup, thread_bound=False)

    async def _transaction(self, batch: list[_Write]) -> list[Any]:
        """Run `batch` in one transaction on the writer thread; return each write's result."""
        return await self._on_writer(lambda: self._transaction_sync(self._writer(), batch))

    def _transaction_sync(self, conn: sqlite3.Connection, batch: list[_Write]) -> list[Any]:
        one = _one_statement(batch)
        if one is not None:
            # no BEGIN or COMMIT: the statement is its own transaction (see _one_statement)
            _insert_rows(conn, *one)
            return [None] * len(batch)
        conn.execute("BEGIN IMMEDIATE")
        try:
            results: list[Any] = []
            start = 0
            while start < len(batch):  # runs of one kind share their statements
                kind = batch[start].kind
                end = start + 1
                while end < len(batch) and batch[end].kind == kind and kind != "update_if":
                    end += 1
                results.extend(self._apply(conn, kind, batch[start:end]))
                start = end
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    def _apply(self, conn: sqlite3.Connection, kind: str, run: list[_Write]) -> list[Any]:
        if kind == "insert":
            rows = [_row(t) for w in run for t in w.args[0]]
            _insert_rows(conn, _INSERT, _COLUMN_COUNT, rows)
            keys = [
                (k.route, k.key, k.body_hash, k.status, k.response, k.created_at)
                for w in run
                if (k := w.args[1]) is not None
            ]
            if keys:
                # an expired key the purge has not reached yet is replaced, not a conflict
                _insert_rows(conn, "INSERT OR REPLACE INTO idempotency", 6, keys)
            return [None] * len(run)
        if kind == "insert_missing":
            counts = []
            for write in run:
                rows = [_row(t) for t in write.args[0]]
                counts.append(_insert_rows(conn, _INSERT_MISSING, _COLUMN_COUNT, rows))
            return counts
        if kind == "import":
            return [_import_records(conn, w.args[0]) for w in run]
        if kind == "update_if":
            (write,) = run
            timer, expect = write.args
            marks = ", ".join("?" for _ in expect)
            cursor = conn.execute(
                f"UPDATE timers SET url = ?, fire_at = ?, {_SET_STATE} "
                f"WHERE id = ? AND status IN ({marks})",
                (timer.url, timer.fire_at, *_state(timer), timer.id, *(s.value for s in expect)),
            )
            return [cursor.rowcount == 1]
        if kind == "attempts":
            outcomes = [outcome for w in run for outcome in w.args[0]]
            _insert_rows(conn, _INSERT_OUTCOMES, _OUTCOME_WIDTH, _outcome_rows(outcomes))
            return [None] * len(run)
        if kind == "purge":
            return [
                conn.execute("DELETE FROM idempotency WHERE created_at < ?", w.args).rowcount
                for w in run
            ]
        raise ValueError(f"unknown write kind {kind!r}")

    # reads --------------------------------------------------------------------------------

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._reader is None:
            raise Unavailable("the store is closed")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise Unavailable(f"the database cannot be read now: {exc}") from None

    async def _read_rows(self, select: str, params: Sequence[Any]) -> list[list[Any]]:
        """Run `select`, whose one column `j` is a json_array per row, as a single step."""
        rows = await self._read(f"SELECT json_group_array(json(j)) FROM ({select})", params)
        result: list[list[Any]] = json.loads(rows[0][0])
        return result

    async def get_timer(self, timer_id: str) -> Timer | None:
        """Return the timer with that id, or None.

        Lookups that arrive in the same turn of the event loop are answered together by
        one query: the read-side twin of group commit. (One query per GET, even on the
        loop's own thread, measured slower: 90 against 80 us of CPU per GET.)
        """
        future: asyncio.Future[Timer | None] = asyncio.get_running_loop().create_future()
        self._lookups.setdefault(timer_id, []).append(future)
        if self._lookup_task is None:
            self._lookup_task = asyncio.create_task(self._run_lookups())
        return await future

    async def _run_lookups(self) -> None:
        try:
            while self._lookups:
                batch, self._lookups = self._lookups, {}
                try:
                    found = {t.id: t for t in await self.get_timers(list(batch))}
                except Exception as exc:  # hand the failure to every waiting caller
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for timer_id, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(timer_id))
        finally:
            self._lookup_task = None

    async def get_timers(self, timer_ids: Sequence[str]) -> list[Timer]:
        """Return the existing timers among `timer_ids`."""
        found: list[Timer] = []
        for start in range(0, len(timer_ids), 500):
            chunk = timer_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            plain = self._point_read(f"SELECT {_COLUMNS} FROM timers WHERE id IN ({marks})", chunk)
            if plain is not None:
                found.extend(_timer_from_row(r) for r in plain)
                continue
            select = f"SELECT {_TIMER_JSON} FROM timers WHERE id IN ({marks})"
            found.extend(_timer(r) for r in await self._read_rows(select, chunk))
        return found

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

    def _open_point_reader(self, target: str) -> sqlite3.Connection:
        setup = [
            f"PRAGMA busy_timeout = {POINT_READ_BUSY_MS}",
            "PRAGMA query_only = 1",
            "PRAGMA cache_size = -16000",
        ]
        return self._open_plain(target, setup)

    def _point_read(self, select: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """Run a lookup by primary key on the event loop's own thread; None: use the reader.

        A lookup of a few rows takes microseconds in SQLite, less than the trip to a reader
        thread and back (a GET cost 76 us against the fixed-body ceiling's 38 us; the trip
        was a third of the difference). On this thread rows come back as plain tuples: the
        JSON detour of `_read_rows` is for threads that would hand the GIL over per row.
        WAL readers do not wait for the writer; in the rare case one must wait (busy), the
        lookup goes to the reader thread instead.
        """
        if self._point_reader is None:
            return None
        try:
            # fetchall steps to the end: the read transaction ends with the statement
            return self._point_reader.execute(select, params).fetchall()
        except sqlite3.OperationalError:
            return None

    async def list_timers(
        self, statuses: Collection[Status] | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return a page ordered by `(fire_at, id)` strictly after `after`.

        Every status is its own range of `timers_status_fire`; a page of all statuses takes
        the first `limit` of each range and merges them (no index on `fire_at` alone: it
        would cost every insert, and listing is rare next to creating).
        """
        wanted = sorted(statuses) if statuses is not None else list(Status)
        params: list[Any] = []
        for s in wanted:
            params.extend((s.value, *(after or ()), limit))
        rows = await self._read_rows(list_query(len(wanted), after is not None), (*params, limit))
        return sorted((_timer(r) for r in rows), key=lambda t: (t.fire_at, t.id))

    async def due_keys(self, after: Cursor | None, until: float, limit: int) -> list[Cursor]:
        """Return `(next_at, id)` of live timers due by `until`, after `after`, in order."""
        lower = after or (float("-inf"), "")
        rows = await self._read_rows(
            f"SELECT json_array({_exact('next_at')}, id) AS j FROM timers "
            "WHERE next_at IS NOT NULL AND (next_at, id) > (?, ?) AND next_at <= ? "
            "ORDER BY next_at, id LIMIT ?",
            (*lower, until, limit),
        )
        return sorted((float(at), str(tid)) for at, tid in rows)

    async def attempts(self, timer_id: str) -> list[Attempt]:
        """Return the kept attempts of a timer, oldest first."""
        rows = await self._read(
            "SELECT attempt, started_at, duration_ms, status_code, error, outcome "
            "FROM attempts WHERE timer_id = ? ORDER BY seq",
            (timer_id,),
        )
        return [Attempt(timer_id, r[0], r[1], r[2], r[3], r[4], Outcome(r[5])) for r in rows]

    async def attempts_of(self, timer_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        """Return the kept attempts of those of `timer_ids` that have any, oldest first."""
        found: dict[str, list[Attempt]] = {}
        for start in range(0, len(timer_ids), 500):
            chunk = timer_ids[start : start + 500]
            rows = await self._read(
                "SELECT timer_id, attempt, started_at, duration_ms, status_code, error, outcome "
                f"FROM attempts WHERE timer_id IN ({', '.join('?' for _ in chunk)}) "
                "ORDER BY timer_id, seq",
                chunk,
            )
            for r in rows:
                found.setdefault(r[0], []).append(
                    Attempt(r[0], r[1], r[2], r[3], r[4], r[5], Outcome(r[6]))
                )
        return found

    async def count_by_status(self) -> dict[Status, int]:
        """Return how many timers are in each status (an index-only count)."""
        # its own connection (opened with the store): a count walks a whole index and must
        # not hold up point reads
        if self._counter is None:
            raise Unavailable("the store is closed")
        try:
            rows = list(
                await self._counter.execute_fetchall(
                    "SELECT status, count(*) FROM timers GROUP BY status"
                )
            )
        except sqlite3.Error as exc:
            raise Unavailable(f"the database cannot be read now: {exc}") from None
        counts = dict.fromkeys(Status, 0)
        counts.update({Status(r[0]): int(r[1]) for r in rows})
        return counts

    async def get_idempotency(self, route: str, key: str) -> IdempotencyRecord | None:
        """Return the stored first answer for `(route, key)`, or None."""
        rows = await self._read(
            "SELECT route, key, body_hash, status, response, created_at FROM idempotency "
            "WHERE route = ? AND key = ?",
            (route, key),
        )
        return IdempotencyRecord(*rows[0]) if rows else None

    async def count_due(self, until: float) -> int:
        """Return how many live timers are due by `until` (a walk of the due-time index)."""
        rows = await self._read(
            "SELECT count(*) FROM timers WHERE next_at IS NOT NULL AND next_at <= ?", (until,)
        )
        return int(rows[0][0])

    # reads for the status page -------------------------------------------------------------

    @staticmethod
    def list_desc_query(statuses: int, before: bool) -> str:
        """The newest-first listing SELECT: `list_query` read backwards along the same index.

        Parameters: `(status, [fire_at, id,] limit)` for each status, then the page limit.
        """
        where = "status = ?" + (" AND (fire_at, id) < (?, ?)" if before else "")
        arm = (
            f"SELECT * FROM (SELECT {_TIMER_JSON}, fire_at, id FROM timers WHERE {where} "
            "ORDER BY fire_at DESC, id DESC LIMIT ?)"
        )
        arms = " UNION ALL ".join([arm] * statuses)
        return f"SELECT j FROM ({arms}) ORDER BY fire_at DESC, id DESC LIMIT ?"

    async def list_timers_desc(
        self, statuses: Collection[Status] | None, limit: int, before: Cursor | None
    ) -> list[Timer]:
        """Return up to `limit` timers ordered by `(fire_at, id)` descending, strictly before
        `before`: the newest-due first. Served by an index like `list_timers`."""
        wanted = sorted(statuses) if statuses is not None else list(Status)
        params: list[Any] = []
        for s in wanted:
            params.extend((s.value, *(before or ()), limit))
        select = self.list_desc_query(len(wanted), before is not None)
        rows = await self._read_rows(select, (*params, limit))
        return sorted((_timer(r) for r in rows), key=lambda t: (t.fire_at, t.id), reverse=True)

    async def list_by_id_prefix(self, prefix: str, limit: int, after: str | None) -> list[Timer]:
        """Return up to `limit` timers whose id starts with `prefix`, in id order, after `after`.

        One range of the primary key: reads at most `limit` rows. Ids are ASCII, so every id
        with the prefix sorts below `prefix + "\\x7f"`.
        """
        low = max(prefix, after) if after is not None else prefix
        compare = ">" if after is not None and after >= prefix else ">="
        select = (
            f"SELECT {_TIMER_JSON} FROM timers WHERE id {compare} ? AND id < ? ORDER BY id LIMIT ?"
        )
        rows = await self._read_rows(select, (low, prefix + "\x7f", limit))
        return sorted((_timer(r) for r in rows), key=lambda t: t.id)
