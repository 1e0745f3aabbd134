"""The PostgreSQL backend: a group-committing writer and a pool of readers.

Several `timerd serve` nodes may share one database: the schema is created or migrated
under a lock at open, every answer is read from the database, and changes compare the
stored status (the `version` column is there for compare-and-set). The driver, asyncpg,
is imported only when a PostgreSQL store is made: the default install does not need it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from timerd.config import is_postgres_url
from timerd.cursor import Cursor
from timerd.errors import DatabaseError, Unavailable
from timerd.models import Attempt, Outcome, Status, Timer
from timerd.store import postgres_sql as sql
from timerd.store.base import IdempotencyRecord
from timerd.store.claims import ClaimResult, LocalClaims
from timerd.store.lookups import CoalescedLookups
from timerd.store.nodes import NodeRegistry
from timerd.store.postgres_claims import PostgresClaims
from timerd.store.postgres_connect import (
    CONNECT_TIMEOUT_S,
    Connector,
    PostgresDriverMissing,
    redact_dsn,
)
from timerd.store.postgres_ownership import CHANNEL, RELOAD, Ownership
from timerd.store.postgres_schema import LATEST_VERSION, migrate, refuse_newer, schema_version
from timerd.store.postgres_writer import GroupWriter

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PostgresDriverMissing", "PostgresStore", "is_postgres_url", "redact_dsn"]

log = logging.getLogger(__name__)

NOTIFY = "SELECT pg_notify($1, $2)"


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
        nodes: NodeRegistry | None = None,
        node_id: str | None = None,
        node_lease_s: float = 10.0,
        attempt_timeout_s: float = 10.0,
        idempotency_retention_s: float = 0.0,
    ) -> None:
        self._connector = Connector(url, read_only=read_only)  # PostgresDriverMissing here
        self.display_url = self._connector.display_url
        """The URL without its password: the only form to print or log."""
        # in-process claims (changes, and deliveries of this node) beside the rows' leases
        self.claims = LocalClaims()
        self.shared = True
        node_id = nodes.node_id if nodes is not None else node_id
        self._claims = PostgresClaims(
            self._connector,
            self.claims,
            node_id or f"store-{secrets.token_hex(6)}",
            node_lease_s=node_lease_s,
            attempt_timeout_s=attempt_timeout_s,
        )
        self._strict_claims = node_id is not None
        """With a node id, an outcome applies only under its claim; without, to any live row."""
        self._nodes = nodes
        self._retention_s = idempotency_retention_s
        """An idempotency record younger than this is never replaced (0: an older one is)."""
        self._node_lease_s = node_lease_s
        self._ownership: Ownership | None = None
        self._attempts_kept = attempts_kept
        self._write_queue_max = write_queue_max
        self._read_only = read_only
        self._read_connections = read_connections
        self._on_commit = on_commit
        self._writer_pool: asyncpg.Pool | None = None
        self._writer: GroupWriter | None = None
        self._readers: asyncpg.Pool | None = None
        self._lookups = CoalescedLookups(self.get_timers)

    @property
    def queued_writes(self) -> int:
        """Return how many writes wait for a commit."""
        return self._writer.queued if self._writer is not None else 0

    async def open(self) -> None:
        """Connect, then create or migrate the schema (read-only stores only check it).

        Raises DatabaseError if the server cannot be reached or refuses us, or the schema
        is newer than this timerd or not timerd's.
        """
        try:
            self._readers = await self._connector.pool(self._read_connections)
            if self._read_only:
                await self._schema(self._readers, migrating=False)
                return
            self._writer_pool = await self._connector.pool(1)
            before = await self._schema(self._writer_pool, migrating=True)
        except BaseException:
            await self.close()
            raise
        if before != LATEST_VERSION:
            log.info("migrated %s from schema %d to %d", self.display_url, before, LATEST_VERSION)
        log.info("opened PostgreSQL database %s", self.display_url)
        self._writer = GroupWriter(
            self._writer_pool,
            self._connector,
            attempts_kept=self._attempts_kept,
            write_queue_max=self._write_queue_max,
            idempotency_retention_s=self._retention_s,
            claimant=self._claims.claimant,
            strict_claims=self._strict_claims,
            on_commit=self._on_commit,
        )
        self._writer.start()

    async def _schema(self, pool: asyncpg.Pool, *, migrating: bool) -> int:
        """Migrate the schema (return the version before) or check it is current."""
        try:
            async with pool.acquire() as conn:
                if migrating:
                    return await migrate(conn)
                current = await schema_version(conn)
        except self._connector.errors as exc:
            doing = "create the schema in" if migrating else "read the schema of"
            reason = self._connector.reason(exc)
            raise DatabaseError(f"cannot {doing} {self.display_url}: {reason}") from None
        refuse_newer(current)
        if current == 0:
            raise DatabaseError(f"{self.display_url} holds no timerd database")
        if current < LATEST_VERSION:
            raise DatabaseError(
                f"{self.display_url} has an older timerd schema ({current}); "
                "start `timerd serve` on it once to migrate it"
            )
        return current

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the connections."""
        if self._ownership is not None:
            await self._ownership.stop()
            self._ownership = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        for pool in (self._writer_pool, self._readers):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT_S)
                except (TimeoutError, OSError):
                    pool.terminate()
        self._writer_pool = self._readers = None

    # writes -------------------------------------------------------------------------------

    async def _submit(self, kind: str, args: tuple[Any, ...], *, bounded: bool) -> Any:
        if self._writer is None:
            raise Unavailable("the store is closed or read-only")
        return await self._writer.submit(kind, args, bounded=bounded)

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
        Returns how many timers were inserted. Nodes running on the database meanwhile
        are fine: ids are unique, so nothing they wrote is touched; one NOTIFY makes them
        reload their windows, so they page in what was imported behind their horizons.
        """
        if self._writer_pool is None:
            raise Unavailable("the store is closed or read-only")
        if not records:
            return 0
        try:
            async with self._writer_pool.acquire() as conn:
                count = await conn.fetchval(sql.IMPORT_TIMERS, *sql.import_args(records))
                if count:
                    await conn.execute(NOTIFY, CHANNEL, RELOAD)
        except self._connector.errors as exc:
            raise self._connector.unavailable(exc, "take writes") from None
        return int(count)

    async def update_timer(self, timer: Timer, expect: frozenset[Status]) -> bool:
        """Replace the row by `timer` if its stored status is in `expect`; bump its version."""
        result: bool = await self._submit("update_if", (timer, expect), bounded=False)
        return result

    async def record_attempts(self, outcomes: Sequence[tuple[Timer, Attempt]]) -> None:
        """Store delivery outcomes and their history entries in the next group commit.

        A live timer takes its new state (and a new version); one that is no longer live
        only gains the history entry.
        """
        if outcomes:
            await self._submit("attempts", (list(outcomes),), bounded=False)

    async def purge_idempotency(self, before: float) -> int:
        """Forget idempotency records created before `before`."""
        result: int = await self._submit("purge", (before,), bounded=False)
        return result

    # reads --------------------------------------------------------------------------------

    async def _fetch(self, statement: str, *args: Any) -> list[Any]:
        if self._readers is None:
            raise Unavailable("the store is closed")
        try:
            return list(await self._readers.fetch(statement, *args))
        except self._connector.errors as exc:
            raise self._connector.unavailable(exc, "be read") from None

    async def get_timer(self, timer_id: str) -> Timer | None:
        """Return the timer with that id, or None.

        Lookups that arrive in the same turn of the event loop share one query.
        """
        return await self._lookups.get(timer_id)

    async def get_timers(self, timer_ids: Sequence[str]) -> list[Timer]:
        """Return the existing timers among `timer_ids`."""
        if not timer_ids:
            return []
        rows = await self._fetch(sql.SELECT_TIMERS, list(timer_ids))
        return [sql.timer_from_row(r) for r in rows]

    async def list_timers(
        self, statuses: Collection[Status] | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return a page ordered by `(fire_at, id)` strictly after `after`."""
        wanted = [s.value for s in (Status if statuses is None else statuses)]
        at, tid = after or (float("-inf"), "")
        rows = await self._fetch(sql.LIST_TIMERS, wanted, at, tid, limit)
        return [sql.timer_from_row(r) for r in rows]

    async def list_timers_desc(
        self, statuses: Collection[Status] | None, limit: int, before: Cursor | None
    ) -> list[Timer]:
        """Return a page ordered by `(fire_at, id)` descending, strictly before `before`."""
        wanted = [s.value for s in (Status if statuses is None else statuses)]
        at, tid = before or (float("inf"), "")
        rows = await self._fetch(sql.LIST_TIMERS_DESC, wanted, at, tid, limit)
        return [sql.timer_from_row(r) for r in rows]

    async def list_by_id_prefix(self, prefix: str, limit: int, after: str | None) -> list[Timer]:
        """Return timers whose id starts with `prefix`, in id order, after the id `after`."""
        rows = await self._fetch(sql.LIST_BY_ID_PREFIX, prefix, after or "", prefix + "\x7f", limit)
        return [sql.timer_from_row(r) for r in rows]

    async def due_keys(self, after: Cursor | None, until: float, limit: int) -> list[Cursor]:
        """Return `(next_at, id)` of live timers due by `until`, after `after`, in order;
        when following the nodes (`watch_ownership`), of this node's buckets only."""
        at, tid = after or (float("-inf"), "")
        ownership = self._ownership
        if ownership is not None:
            await ownership.known(self._node_lease_s)
        if ownership is None or ownership.buckets is None or len(ownership.buckets) == sql.BUCKETS:
            rows = await self._fetch(sql.DUE_KEYS, at, tid, until, limit)
        else:
            owned = sorted(ownership.buckets)
            rows = await self._fetch(sql.DUE_KEYS_OWNED, at, tid, until, limit, owned)
        return [(float(r[0]), str(r[1])) for r in rows]

    # several nodes ------------------------------------------------------------------------

    async def claim_due(self, due: Sequence[Cursor]) -> ClaimResult:
        """Claim the due, free timers of `due` for this node in one statement (a lease)."""
        if self._readers is None:
            raise Unavailable("the store is closed")
        return await self._claims.claim_due(self._readers, due)

    async def release_claims(self, timer_ids: Sequence[str]) -> None:
        """End this node's claims on `timer_ids`: another node may take them at once."""
        if self._readers is None:
            raise Unavailable("the store is closed")
        await self._claims.release(self._readers, timer_ids)

    async def change_timer(self, before: Timer, after: Timer) -> bool:
        """Replace the row by `after` if it still has `before`'s status and `updated_at`,
        and no other node holds it under an unexpired claim."""
        expect = frozenset({before.status})
        result: bool = await self._submit(
            "update_if", (after, expect, before.updated_at), bounded=False
        )
        return result

    def watch_ownership(self, changed: Callable[[], None]) -> None:
        """Follow the live nodes (with a registry): `due_keys` pages this node's buckets."""
        nodes = self._nodes
        if nodes is None:
            return
        if self._ownership is None:
            self._ownership = Ownership(
                self._connector,
                nodes.node_id,
                self._node_lease_s,
                nodes.live,
                lambda: float(getattr(nodes, "offset_s", 0.0)),
            )
        self._ownership.watch(changed)

    async def attempts(self, timer_id: str) -> list[Attempt]:
        """Return the kept attempts of a timer, oldest first."""
        rows = await self._fetch(sql.SELECT_ATTEMPTS, timer_id)
        return [Attempt(timer_id, r[0], r[1], r[2], r[3], r[4], Outcome(r[5])) for r in rows]

    async def attempts_of(self, timer_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        """Return the kept attempts of those of `timer_ids` that have any, oldest first."""
        found: dict[str, list[Attempt]] = {}
        for r in await self._fetch(sql.SELECT_ATTEMPTS_OF, list(timer_ids)) if timer_ids else []:
            found.setdefault(r[0], []).append(
                Attempt(r[0], r[1], r[2], r[3], r[4], r[5], Outcome(r[6]))
            )
        return found

    async def count_due(self, until: float) -> int:
        """Return how many live timers are due by `until` (at boot: how many are overdue)."""
        rows = await self._fetch(sql.COUNT_DUE, until)
        return int(rows[0][0])

    async def count_by_status(self) -> dict[Status, int]:
        """Return how many timers are in each status (of the whole set, every node's)."""
        counts = dict.fromkeys(Status, 0)
        counts.update({Status(r[0]): int(r[1]) for r in await self._fetch(sql.COUNT_BY_STATUS)})
        return counts

    async def get_idempotency(self, route: str, key: str) -> IdempotencyRecord | None:
        """Return the stored first answer for `(route, key)`, or None."""
        rows = await self._fetch(sql.SELECT_IDEMPOTENCY, route, key)
        return IdempotencyRecord(*rows[0]) if rows else None
