"""The PostgreSQL backend: a group-committing writer connection and a pool of readers.

Every write goes through one queue. A single writer task takes everything queued, runs it
in one transaction (or one statement, when the batch is one) and resolves each caller's
future after COMMIT, so one round trip and one WAL flush cover many creates and outcomes.
The driver (asyncpg) is imported only when a PostgreSQL store is made: the default
install does not need it.
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
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from timerd.errors import Conflict, DatabaseError, TimerdError, Unavailable
from timerd.models import Attempt, Outcome, Status, Timer
from timerd.store import postgres_sql as sql
from timerd.store.base import Cursor, IdempotencyRecord
from timerd.store.postgres_schema import LATEST_VERSION, migrate, refuse_newer, schema_version

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql://", "postgres://")
MAX_OPS_PER_COMMIT = 4000
BACKGROUND_ROWS_PER_COMMIT = 1000
"""Delivery outcomes (and purges) per commit at most: the API's writes go first."""
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
"""A statement that takes longer fails (503 for a write) instead of holding callers."""
_BACKGROUND = frozenset({"attempts", "purge"})


class PostgresDriverMissing(DatabaseError):
    """A PostgreSQL URL was given, but the driver is not installed."""


def is_postgres_url(db: object) -> bool:
    """Tell whether `db` names a PostgreSQL database (`postgresql://` or `postgres://`)."""
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def redact_dsn(url: str) -> str:
    """Return `url` without its password (in the user part or the query), for logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        users, host = netloc.rsplit("@", 1)
        netloc = users.split(":", 1)[0] + "@" + host
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    return dict(parse_qsl(parts.query)).get("password")


def _require_driver() -> None:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise PostgresDriverMissing(
            "a PostgreSQL database needs its driver: pip install 'timerd[postgresql]'"
        ) from None


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


class PostgresStore:
    """The `Store` contract on a PostgreSQL database that several nodes may share."""

    def __init__(
        self,
        url: str,
        *,
        attempts_kept: int = 20,
        write_queue_max: int = 50_000,
        read_only: bool = False,
        read_connections: int = 4,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        if not is_postgres_url(url):
            raise DatabaseError(f"not a PostgreSQL URL: {redact_dsn(url)}")
        _require_driver()
        self.url = url
        self.display_url = redact_dsn(url)
        self._secret = _password(url)
        self._attempts_kept = attempts_kept
        self._write_queue_max = write_queue_max
        self._read_only = read_only
        self._read_connections = read_connections
        self._on_commit = on_commit
        self._writer_pool: asyncpg.Pool | None = None
        self._readers: asyncpg.Pool | None = None
        self._queue: deque[_Write] = deque()  # the API's writes: first in every commit
        self._background: deque[_Write] = deque()  # outcomes and purges: a bounded share
        self._has_work = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        self._lookups: dict[str, list[asyncio.Future[Timer | None]]] = {}
        self._lookup_task: asyncio.Task[None] | None = None

    @property
    def queued_writes(self) -> int:
        """Return how many writes wait for a commit."""
        return len(self._queue) + len(self._background)

    def _scrub(self, text: str) -> str:
        """`text` without the password, whatever the driver put in it."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return text

    async def open(self) -> None:
        """Connect, then create or migrate the schema (read-only stores only check it).

        Raises DatabaseError if the server cannot be reached or refuses us, or the schema
        is newer than this timerd or not timerd's.
        """
        self._closing = False
        try:
            self._readers = await self._pool(self._read_connections)
            if self._read_only:
                await self._check_schema()
                return
            self._writer_pool = await self._pool(1)
            async with self._writer_pool.acquire() as conn:
                before = await migrate(conn)
        except BaseException:
            await self.close()
            raise
        if before != LATEST_VERSION:
            log.info("migrated %s from schema %d to %d", self.display_url, before, LATEST_VERSION)
        log.info("opened PostgreSQL database %s", self.display_url)
        self._writer_task = asyncio.create_task(self._write_loop(), name="timerd-pg-writer")

    async def _pool(self, size: int) -> asyncpg.Pool:
        import asyncpg

        settings = {"application_name": "timerd", "jit": "off"}
        if self._read_only:
            settings["default_transaction_read_only"] = "on"
        try:
            return await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=size,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings=settings,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise DatabaseError(f"cannot connect to {self.display_url}: {reason}") from None

    async def _check_schema(self) -> None:
        assert self._readers is not None
        async with self._readers.acquire() as conn:
            current = await schema_version(conn)
        refuse_newer(current)
        if current == 0:
            raise DatabaseError(f"{self.display_url} holds no timerd database")
        if current < LATEST_VERSION:
            raise DatabaseError(
                f"{self.display_url} has an older timerd schema ({current}); "
                "start `timerd serve` on it once to migrate it"
            )

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the connections."""
        self._closing = True
        if self._writer_task is not None:
            self._has_work.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        for pool in (self._writer_pool, self._readers):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT_S)
                except (TimeoutError, OSError):
                    pool.terminate()
        self._writer_pool = self._readers = None

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

    async def update_timer(self, timer: Timer, expect: frozenset[Status]) -> bool:
        """Replace the row by `timer` if its stored status is in `expect`; bump its version."""
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
            raise Unavailable("too many writes are waiting for the database; retry shortly")
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
        import asyncpg

        started = time.perf_counter()
        try:
            results = await self._transaction(batch)
        except asyncpg.UniqueViolationError as exc:
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
        import asyncpg

        if write.future.done():
            return
        if isinstance(exc, asyncpg.UniqueViolationError):
            error: TimerdError = Conflict("a timer with that id (or that key) already exists")
        else:
            reason = self._scrub(str(exc) or type(exc).__name__)
            log.error("write to %s failed: %s", self.display_url, reason)
            error = Unavailable(f"the database cannot take writes now: {reason}", retry_after_s=2)
        write.future.set_exception(error)

    async def _transaction(self, batch: list[_Write]) -> list[Any]:
        """Run `batch` in one transaction; return each write's result."""
        steps = self._steps(batch)
        assert self._writer_pool is not None, "the store is not open for writing"
        async with self._writer_pool.acquire() as conn:
            if len(steps) == 1:  # one statement is its own transaction: no BEGIN, no COMMIT
                counts = [sql.row_count(await conn.execute(steps[0].statement, *steps[0].args))]
            else:
                async with conn.transaction():
                    counts = [
                        sql.row_count(await conn.execute(step.statement, *step.args))
                        for step in steps
                    ]
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
            run = batch[start:end]
            if kind == "insert":
                timers = [t for w in run for t in w.args[0]]
                if timers:
                    steps.append(_Step(sql.INSERT_TIMERS, sql.timer_arrays(timers)))
                keys = {(k.route, k.key): k for w in run if (k := w.args[1]) is not None}
                if keys:
                    # an expired key the purge has not reached yet is replaced, not a conflict
                    args = sql.idempotency_arrays(list(keys.values()))
                    steps.append(_Step(sql.UPSERT_IDEMPOTENCY, args))
            elif kind == "attempts":
                outcomes = [o for w in run for o in w.args[0]]
                for round_ in sql.outcome_rounds(outcomes):
                    args = sql.outcome_args(round_, self._attempts_kept)
                    steps.append(_Step(sql.RECORD_OUTCOMES, args))
            else:
                for write in run:
                    if kind == "insert_missing":
                        args = sql.timer_arrays(write.args[0])
                        steps.append(_Step(sql.INSERT_MISSING, args, write))
                    elif kind == "update_if":
                        steps.append(_Step(sql.UPDATE_IF, sql.update_args(*write.args), write))
                    elif kind == "purge":
                        steps.append(_Step(sql.PURGE_IDEMPOTENCY, write.args, write))
                    else:
                        raise ValueError(f"unknown write kind {kind!r}")
            start = end
        return steps

    # reads --------------------------------------------------------------------------------

    async def _fetch(self, statement: str, *args: Any) -> list[Any]:
        import asyncpg

        if self._readers is None:
            raise Unavailable("the store is closed")
        try:
            return list(await self._readers.fetch(statement, *args))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise Unavailable(f"the database cannot be read now: {reason}") from None

    async def get_timer(self, timer_id: str) -> Timer | None:
        """Return the timer with that id, or None.

        Lookups that arrive in the same turn of the event loop share one query.
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
        if not timer_ids:
            return []
        rows = await self._fetch(sql.SELECT_TIMERS, list(timer_ids))
        return [sql.timer_from_row(r) for r in rows]

    async def list_timers(
        self, status: Status | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return a page ordered by `(fire_at, id)` strictly after `after`."""
        statuses = [status.value] if status is not None else [s.value for s in Status]
        at, tid = after or (float("-inf"), "")
        rows = await self._fetch(sql.LIST_TIMERS, statuses, at, tid, limit)
        return [sql.timer_from_row(r) for r in rows]

    async def due_keys(self, after: Cursor | None, until: float, limit: int) -> list[Cursor]:
        """Return `(next_at, id)` of live timers due by `until`, after `after`, in order."""
        at, tid = after or (float("-inf"), "")
        rows = await self._fetch(sql.DUE_KEYS, at, tid, until, limit)
        return [(float(r[0]), str(r[1])) for r in rows]

    async def attempts(self, timer_id: str) -> list[Attempt]:
        """Return the kept attempts of a timer, oldest first."""
        rows = await self._fetch(sql.SELECT_ATTEMPTS, timer_id)
        return [Attempt(timer_id, r[0], r[1], r[2], r[3], r[4], Outcome(r[5])) for r in rows]

    async def count_by_status(self) -> dict[Status, int]:
        """Return how many timers are in each status."""
        counts = dict.fromkeys(Status, 0)
        counts.update({Status(r[0]): int(r[1]) for r in await self._fetch(sql.COUNT_BY_STATUS)})
        return counts

    async def get_idempotency(self, route: str, key: str) -> IdempotencyRecord | None:
        """Return the stored first answer for `(route, key)`, or None."""
        rows = await self._fetch(sql.SELECT_IDEMPOTENCY, route, key)
        return IdempotencyRecord(*rows[0]) if rows else None
