"""The SQLite writer: one queue, one writer thread, group commits and WAL checkpoints.

Every write goes through one queue. A single writer task takes everything queued, runs it
in one transaction and resolves each caller's future after COMMIT, so one fsync covers many
creates and delivery outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from timerd.errors import Conflict, DatabaseError, TimerdError, Unavailable
from timerd.models import Attempt, Status, Timer
from timerd.store.base import IdempotencyRecord
from timerd.store.sqlite.connections import SqliteParts
from timerd.store.sqlite.statements import (
    COLUMN_COUNT,
    CREATE_OUTCOMES,
    INSERT,
    INSERT_MISSING,
    INSERT_OUTCOMES,
    OUTCOME_WIDTH,
    SET_STATE,
    Write,
    import_records,
    insert_rows,
    one_statement,
    outcome_rows,
    outcome_trigger,
    state_row,
    timer_row,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_OPS_PER_COMMIT = 4000
BACKGROUND_ROWS_PER_COMMIT = 250
"""Delivery outcomes (and purges) per commit at most: they share the writer with creates,
which go first, and a short commit keeps a create's wait short."""
GATHER_TURNS = 3
GATHER_FROM = 8
GATHER_ENOUGH = 256
"""While the API writes concurrently (the last commit carried GATHER_FROM of its writes or
more), the writer lets the event loop turn GATHER_TURNS times before it takes a batch,
unless GATHER_ENOUGH writes already wait. A request read in one turn reaches the queue two
turns later (the protocol's wakeup, then the handler's task), and an fsync costs as much
CPU as many inserts, so fuller commits are cheaper per create. Not otherwise: turns of a
busy loop are long, and a lone create would wait for them (BENCHMARKS.md has the figures)."""
_BACKGROUND = frozenset({"attempts", "purge"})
CHECKPOINT_EVERY_S = 0.5
WRITER_CHECKPOINT_PAGES = 20_000
"""The writer checkpoints by itself only if the background checkpoints fall this far behind."""


class SqliteWriter(SqliteParts):
    """The writes of the Store contract, group-committed on the writer thread."""

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
        (self._background if kind in _BACKGROUND else self._queue).append(Write(kind, args, future))
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

    def _next_batch(self) -> list[Write]:
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

    async def _commit_batch(self, batch: list[Write]) -> None:
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

    def _settle_error(self, write: Write, exc: sqlite3.Error) -> None:
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
            CREATE_OUTCOMES,
            outcome_trigger(self._attempts_kept),
        ]
        return self._open_plain(str(self.path), setup, thread_bound=False)

    async def _transaction(self, batch: list[Write]) -> list[Any]:
        """Run `batch` in one transaction on the writer thread; return each write's result."""
        return await self._on_writer(lambda: self._transaction_sync(self._writer(), batch))

    def _transaction_sync(self, conn: sqlite3.Connection, batch: list[Write]) -> list[Any]:
        one = one_statement(batch)
        if one is not None:
            # no BEGIN or COMMIT: the statement is its own transaction (see one_statement)
            insert_rows(conn, *one)
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

    def _apply(self, conn: sqlite3.Connection, kind: str, run: list[Write]) -> list[Any]:
        if kind == "insert":
            rows = [timer_row(t) for w in run for t in w.args[0]]
            insert_rows(conn, INSERT, COLUMN_COUNT, rows)
            keys = [
                (k.route, k.key, k.body_hash, k.status, k.response, k.created_at)
                for w in run
                if (k := w.args[1]) is not None
            ]
            if keys:
                # an expired key the purge has not reached yet is replaced, not a conflict
                insert_rows(conn, "INSERT OR REPLACE INTO idempotency", 6, keys)
            return [None] * len(run)
        if kind == "insert_missing":
            counts = []
            for write in run:
                rows = [timer_row(t) for t in write.args[0]]
                counts.append(insert_rows(conn, INSERT_MISSING, COLUMN_COUNT, rows))
            return counts
        if kind == "import":
            return [import_records(conn, w.args[0]) for w in run]
        if kind == "update_if":
            (write,) = run
            timer, expect = write.args
            marks = ", ".join("?" for _ in expect)
            cursor = conn.execute(
                f"UPDATE timers SET url = ?, fire_at = ?, {SET_STATE} "
                f"WHERE id = ? AND status IN ({marks})",
                (timer.url, timer.fire_at, *state_row(timer), timer.id, *(s.value for s in expect)),
            )
            return [cursor.rowcount == 1]
        if kind == "attempts":
            outcomes = [outcome for w in run for outcome in w.args[0]]
            insert_rows(conn, INSERT_OUTCOMES, OUTCOME_WIDTH, outcome_rows(outcomes))
            return [None] * len(run)
        if kind == "purge":
            return [
                conn.execute("DELETE FROM idempotency WHERE created_at < ?", w.args).rowcount
                for w in run
            ]
        raise ValueError(f"unknown write kind {kind!r}")

    # reads --------------------------------------------------------------------------------
