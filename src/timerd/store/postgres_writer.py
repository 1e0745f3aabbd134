"""Group commit on PostgreSQL: one queue, one writer task, one connection.

The writer takes everything queued, runs it as one transaction (or as one statement with
no BEGIN and COMMIT, when the batch is one) and resolves each caller's future after the
commit: one round trip and one WAL flush cover many creates and delivery outcomes. The
API's writes go first; outcomes and purges take a bounded share of each commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from timerd.errors import Conflict, TimerdError, Unavailable
from timerd.store import postgres_sql as sql
from timerd.store.postgres_connect import Connector

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

MAX_OPS_PER_COMMIT = 4000
BACKGROUND_ROWS_PER_COMMIT = 1000
"""Delivery outcomes (and purges) per commit at most: the API's writes go first."""
_BACKGROUND = frozenset({"attempts", "purge"})


@dataclass(slots=True)
class _Write:
    """One queued write: its kind, its arguments and the caller waiting for COMMIT."""

    kind: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any] = field(repr=False)


@dataclass(slots=True)
class _Step:
    """One statement of a commit; `owner` takes its row count as its result."""

    statement: str
    args: Sequence[Any]
    owner: _Write | None = None
    rows: int | None = None
    """The row count it must have, or the transaction fails (KeyTaken)."""


class KeyTaken(Exception):
    """An idempotency key written by another node within the retention: nothing is written."""


class GroupWriter:
    """Commits queued writes in batches on one pooled connection (reopened if lost)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connector: Connector,
        *,
        attempts_kept: int,
        write_queue_max: int,
        idempotency_retention_s: float,
        claimant: str,
        strict_claims: bool,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._retention_s = idempotency_retention_s
        self._claimant = claimant
        self._outcome_claimant = claimant if strict_claims else None
        self._connector = connector
        self._attempts_kept = attempts_kept
        self._write_queue_max = write_queue_max
        self._on_commit = on_commit
        self._queue: deque[_Write] = deque()  # the API's writes: first in every commit
        self._background: deque[_Write] = deque()  # outcomes and purges: a bounded share
        self._has_work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        """Return how many writes wait for a commit."""
        return len(self._queue) + len(self._background)

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._loop(), name="timerd-pg-writer")

    async def close(self) -> None:
        """Commit what is queued, then stop; new writes are refused from now on."""
        self._closing = True
        if self._task is not None:
            self._has_work.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, kind: str, args: tuple[Any, ...], *, bounded: bool) -> Any:
        """Queue one write and return its result once committed.

        Raises Conflict (a unique key) or Unavailable (closed, queue full, database down).
        """
        if self._task is None or self._closing:
            raise Unavailable("the store is closed or read-only")
        if bounded and len(self._queue) >= self._write_queue_max:
            raise Unavailable("too many writes are waiting for the database; retry shortly")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        (self._background if kind in _BACKGROUND else self._queue).append(
            _Write(kind, args, future)
        )
        self._has_work.set()
        return await future

    async def _loop(self) -> None:
        """Commit everything queued, batch after batch, until closed and drained."""
        while True:
            if not self._queue and not self._background:
                if self._closing:
                    return
                self._has_work.clear()
                await self._has_work.wait()
                continue
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
        import asyncpg  # noqa: PLC0415  the optional driver: a default install has none

        started = time.perf_counter()
        try:
            results = await self._transaction(batch)
        except (asyncpg.UniqueViolationError, KeyTaken) as exc:
            if len(batch) == 1:
                self._settle_error(batch[0], exc)
                return
            # one write broke a constraint: each alone, so only the culprit fails
            for write in batch:
                try:
                    (result,) = await self._transaction([write])
                except Exception as single_exc:
                    self._settle_error(write, single_exc)
                else:
                    if not write.future.done():
                        write.future.set_result(result)
            return
        except Exception as exc:  # unreachable, read-only, full or failing: all alike, at once
            for write in batch:
                self._settle_error(write, exc)
            return
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        for write, result in zip(batch, results, strict=True):
            if not write.future.done():
                write.future.set_result(result)

    def _settle_error(self, write: _Write, exc: Exception) -> None:
        import asyncpg  # noqa: PLC0415  the optional driver: a default install has none

        if write.future.done():
            return
        if isinstance(exc, asyncpg.UniqueViolationError):
            error: TimerdError = Conflict("a timer with that id (or that key) already exists")
        elif isinstance(exc, KeyTaken):
            error = Conflict("a request with this Idempotency-Key was answered meanwhile; retry")
        else:
            error = self._connector.unavailable(exc, "take writes")
            log.error("write to %s failed: %s", self._connector.display_url, error)
        write.future.set_exception(error)

    async def _transaction(self, batch: list[_Write]) -> list[Any]:
        """Run `batch` in one transaction; return each write's result."""
        steps = self._steps(batch)
        async with self._pool.acquire() as conn:
            if len(steps) == 1:  # one statement is its own transaction: no BEGIN, no COMMIT
                counts = [sql.row_count(await conn.execute(steps[0].statement, *steps[0].args))]
            else:
                async with conn.transaction():
                    counts = []
                    for step in steps:
                        count = sql.row_count(await conn.execute(step.statement, *step.args))
                        if step.rows is not None and count != step.rows:
                            raise KeyTaken  # rolls back the whole batch; each runs alone
                        counts.append(count)
        owned = {id(s.owner): n for s, n in zip(steps, counts, strict=True) if s.owner}
        results: list[Any] = []
        for write in batch:
            if write.kind == "update_if":
                results.append(owned[id(write)] == 1)
            elif write.kind in ("insert_missing", "purge"):
                results.append(owned[id(write)])
            else:
                results.append(None)
        return results

    def _steps(self, batch: list[_Write]) -> list[_Step]:
        """The statements of a batch: runs of one kind share theirs, in queue order."""
        steps: list[_Step] = []
        start = 0
        while start < len(batch):
            kind = batch[start].kind
            end = start + 1
            while end < len(batch) and batch[end].kind == kind:
                end += 1
            steps.extend(self._run_steps(kind, batch[start:end]))
            start = end
        return steps

    def _run_steps(self, kind: str, run: list[_Write]) -> list[_Step]:
        if kind == "insert":
            steps = []
            timers = [t for w in run for t in w.args[0]]
            if timers:
                steps.append(_Step(sql.INSERT_TIMERS, sql.timer_arrays(timers)))
            # the last record per key wins, as each would replace the one before it (one
            # statement may not change a row twice)
            keys = {(k.route, k.key): k for w in run if (k := w.args[1]) is not None}
            if keys:
                # an expired key the purge has not reached yet is replaced, not a conflict
                args = [*sql.idempotency_arrays(list(keys.values())), self._retention_s]
                steps.append(_Step(sql.UPSERT_IDEMPOTENCY, args, rows=len(keys)))
            return steps
        if kind == "attempts":
            outcomes = [o for w in run for o in w.args[0]]
            return [
                _Step(
                    sql.RECORD_OUTCOMES,
                    sql.outcome_args(round_, self._attempts_kept, self._outcome_claimant),
                )
                for round_ in sql.outcome_rounds(outcomes)
            ]
        if kind == "insert_missing":
            return [_Step(sql.INSERT_MISSING, sql.timer_arrays(w.args[0]), w) for w in run]
        if kind == "update_if":  # (timer, expect) or (timer, expect, updated_at read)
            return [
                _Step(
                    sql.UPDATE_IF,
                    sql.update_args(w.args[0], w.args[1], self._claimant, *w.args[2:]),
                    w,
                )
                for w in run
            ]
        if kind == "purge":
            return [_Step(sql.PURGE_IDEMPOTENCY, w.args, w) for w in run]
        raise ValueError(f"unknown write kind {kind!r}")
