"""The node registry on PostgreSQL: a row per node, refreshed on a heartbeat, in database time.

A node is live while its `last_seen_at` is within `node_lease_s` of the database's `now()`:
every time here is the database's, so the nodes' own clocks never decide who is alive. Each
heartbeat (every third of the lease) also measures this node's clock against the database's,
because a node whose clock is off would fire its timers early or late; over
`max_clock_skew_s` at start, the node refuses to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from timerd.store.nodes import WARN_OFFSET_S, ClockSkew, NodeInfo
from timerd.store.postgres_connect import CONNECT_TIMEOUT_S, Connector

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

START_SAMPLES = 5
"""Clock readings at start; the one with the shortest round trip is the measure."""
BEAT_SAMPLES = 2

_NOW = "extract(epoch from now())::float8"
JOIN = (
    "INSERT INTO nodes (id, started_at, last_seen_at, version) "
    f"VALUES ($1, {_NOW}, {_NOW}, $2) ON CONFLICT (id) DO UPDATE SET "
    "started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at, "
    "version = EXCLUDED.version"
)
# an upsert, not an UPDATE: a row that went (a long pause past the lease) comes back
HEARTBEAT = (
    "INSERT INTO nodes (id, started_at, last_seen_at, version) "
    f"VALUES ($1, {_NOW}, {_NOW}, $2) ON CONFLICT (id) DO UPDATE SET "
    "last_seen_at = EXCLUDED.last_seen_at, version = EXCLUDED.version"
)
LEAVE = "DELETE FROM nodes WHERE id = $1"
NOTIFY = "SELECT pg_notify('timerd_nodes', $1)"
"""Tells the other nodes at once that this one joined or left (see postgres_ownership)."""
LIVE = (
    "SELECT id, started_at, last_seen_at, version FROM nodes "
    f"WHERE last_seen_at > {_NOW} - $1 ORDER BY id"
)
DATABASE_CLOCK = "SELECT extract(epoch from clock_timestamp())::float8"


async def measure_offset(
    conn: asyncpg.pool.PoolConnectionProxy, samples: int, now: Callable[[], float] = time.time
) -> float:
    """Return this machine's clock minus the database's, in seconds.

    Each reading is set against the middle of its round trip; the reading with the
    shortest round trip is the least uncertain, so it is the one kept.
    """
    best_offset, best_rtt = 0.0, float("inf")
    for _ in range(samples):
        before = now()
        database = float(await conn.fetchval(DATABASE_CLOCK))
        after = now()
        if after - before < best_rtt:
            best_offset, best_rtt = (before + after) / 2 - database, after - before
    return best_offset


class PostgresNodes:
    """This node's row in the `nodes` table, its heartbeat, and the list of live nodes."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        version: str,
        lease_s: float,
        max_clock_skew_s: float,
        on_offset: Callable[[float], None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`now` is this node's wall clock (the one its timers fire by); tests shift it."""
        self._connector = Connector(url)  # PostgresDriverMissing here
        self._now = now
        self.node_id = node_id
        self._version = version
        self._lease_s = lease_s
        self._max_skew_s = max_clock_skew_s
        self._on_offset = on_offset
        self._pool: asyncpg.Pool | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._warned = False
        self.offset_s = 0.0
        """This node's clock minus the database's, as last measured."""

    async def start(self) -> None:
        """Measure the clock (ClockSkew if too far off), join the set, start the heartbeat."""
        self._pool = await self._connector.pool(2)
        try:
            async with self._pool.acquire() as conn:
                offset = await measure_offset(conn, START_SAMPLES, self._now)
                self._note_offset(offset)
                if abs(offset) > self._max_skew_s:
                    raise ClockSkew(
                        f"this machine's clock is {_offset_text(offset)} the database's, more "
                        f"than max_clock_skew_s ({self._max_skew_s:g} s) allows; synchronise "
                        "the clocks (NTP)"
                    )
                await conn.execute(JOIN, self.node_id, self._version)
                await conn.execute(NOTIFY, self.node_id)
        except self._connector.errors as exc:
            await self._close_pool()
            raise self._connector.unavailable(exc, "register this node") from None
        except BaseException:
            await self._close_pool()
            raise
        log.info(
            "node %s joined %s (clock %s the database's)",
            self.node_id,
            self._connector.display_url,
            _offset_text(offset),
        )
        self._beat_task = asyncio.create_task(self._beat(), name="timerd-node-heartbeat")

    async def stop(self) -> None:
        """Stop the heartbeat and remove this node's row, so the others see it gone at once."""
        if self._beat_task is not None:
            self._beat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat_task
            self._beat_task = None
        if self._pool is None:
            return
        try:
            await self._pool.execute(LEAVE, self.node_id)
            await self._pool.execute(NOTIFY, self.node_id)
        except self._connector.errors as exc:
            log.warning(
                "node %s could not leave %s (%s); the others drop it within %g s",
                self.node_id,
                self._connector.display_url,
                self._connector.reason(exc),
                self._lease_s,
            )
        await self._close_pool()

    async def live(self) -> list[NodeInfo]:
        """Return the nodes seen within `node_lease_s` of the database's now, by id."""
        if self._pool is None:
            return []
        try:
            rows = await self._pool.fetch(LIVE, self._lease_s)
        except self._connector.errors as exc:
            raise self._connector.unavailable(exc, "be read") from None
        return [NodeInfo(r[0], r[1], r[2], r[3]) for r in rows]

    async def _beat(self) -> None:
        """Refresh this node's row and measure the clock, every third of the lease."""
        assert self._pool is not None
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                async with self._pool.acquire() as conn:
                    await conn.execute(HEARTBEAT, self.node_id, self._version)
                    self._note_offset(await measure_offset(conn, BEAT_SAMPLES, self._now))
            except self._connector.errors as exc:
                log.warning(
                    "node %s heartbeat to %s failed: %s",
                    self.node_id,
                    self._connector.display_url,
                    self._connector.reason(exc),
                )
            except Exception:  # the loop guard: log and beat again
                log.exception("node %s heartbeat failed", self.node_id)

    def _note_offset(self, offset: float) -> None:
        """Publish the offset; warn when it goes over 50 ms, and say when it is back."""
        self.offset_s = offset
        if self._on_offset is not None:
            self._on_offset(offset)
        over = abs(offset) > WARN_OFFSET_S
        if over and not self._warned:
            log.warning(
                "this machine's clock is %s the database's (over %g ms): timers fire that "
                "much off on this node; synchronise the clocks (NTP)",
                _offset_text(offset),
                WARN_OFFSET_S * 1000,
            )
        elif self._warned and not over:
            log.info(
                "this machine's clock is back within %g ms of the database's",
                WARN_OFFSET_S * 1000,
            )
        self._warned = over

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError):
            pool.terminate()


def _offset_text(offset: float) -> str:
    """`0.000312 s ahead of` / `1.2 s behind`: how this machine's clock stands."""
    return f"{abs(offset):.6f} s {'ahead of' if offset >= 0 else 'behind'}"
