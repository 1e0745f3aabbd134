"""Which timers a node pages in: buckets of ids, shared by rendezvous hashing, no coordinator.

A timer's bucket is `hashtext(id) & 1023`, computed by the database. Each bucket belongs to
the live node with the highest hash of (node id, bucket), so every node that sees the same
live list agrees, with no lease table. Ownership only decides what a node pages into its
heap: delivery-once comes from the claims (timerd.store.postgres_claims), so a moment when
two nodes disagree costs a refused claim, never a duplicate.

The live list is the node registry's (timerd.store.postgres_nodes), read every third of
the lease, at the moment the next node's lease would run out, and at once when a
`NOTIFY timerd_nodes` says a node joined or left; an import's NOTIFY (payload `reload`)
and a lost listening connection make the due loop reload its window too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from timerd.store.nodes import NodeInfo
from timerd.store.postgres_connect import CONNECT_TIMEOUT_S, Connector
from timerd.store.postgres_sql import BUCKETS

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "timerd_nodes"
"""Nodes NOTIFY here when they join or leave (never per timer: NOTIFY locks at commit)."""
RELOAD = "reload"
"""The payload that asks every node to reload its window (an import added timers)."""
EXPIRY_SLACK_S = 0.05
_RETRY_S = 1.0


def _weight(node_id: str, bucket: int) -> int:
    digest = hashlib.blake2b(f"{bucket}\x00{node_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owned_buckets(node_id: str, live: Collection[str]) -> frozenset[int]:
    """Return the buckets `node_id` owns among the `live` nodes (it counts itself live)."""
    nodes = sorted({*live, node_id})
    if nodes == [node_id]:
        return frozenset(range(BUCKETS))
    return frozenset(
        b for b in range(BUCKETS) if max(nodes, key=lambda n: (_weight(n, b), n)) == node_id
    )


class Ownership:
    """This node's buckets, kept current with the live nodes; tells a watcher of changes."""

    def __init__(
        self,
        connector: Connector,
        node_id: str,
        lease_s: float,
        live: Callable[[], Awaitable[list[NodeInfo]]],
        clock_offset: Callable[[], float],
    ) -> None:
        self._connector = connector
        self.node_id = node_id
        self._lease_s = lease_s
        self._live = live
        self._clock_offset = clock_offset
        self.buckets: frozenset[int] | None = None
        """The buckets this node owns; None until first known (then it pages every one)."""
        self.peers: tuple[str, ...] = ()
        self._watchers: list[Callable[[], None]] = []
        self._poke = asyncio.Event()
        self._known = asyncio.Event()
        self._listener: asyncpg.Connection[Any] | None = None
        self._listener_lost = False
        self._reload_asked = False
        self._task: asyncio.Task[None] | None = None

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` on every change of `buckets`; start following the live nodes."""
        self._watchers.append(changed)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="timerd-ownership")

    async def known(self, timeout_s: float) -> None:
        """Wait (up to `timeout_s`) until the first live list was read."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._known.wait(), timeout_s)

    async def stop(self) -> None:
        """Stop following the live nodes; close the listening connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_listener()

    async def _run(self) -> None:
        while True:
            wait_s = self._lease_s / 3
            self._poke.clear()  # before reading: a NOTIFY from now on reads again
            try:
                await self._ensure_listener()
                wait_s = min(wait_s, self._refresh(await self._live()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop guard: the database may be away a while
                log.warning("cannot read the live nodes now: %s", self._connector.reason(exc))
                wait_s = _RETRY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), max(wait_s, 0.01))

    def _refresh(self, live: list[NodeInfo]) -> float:
        """Recompute from `live`; return how long until the next lease among them ends."""
        peers = tuple(sorted({n.id for n in live} | {self.node_id}))
        reload = self._listener_lost or self._reload_asked
        self._listener_lost = self._reload_asked = False
        if peers != self.peers or self.buckets is None or reload:
            self.peers = peers
            self.buckets = owned_buckets(self.node_id, peers)
            log.info(
                "node %s owns %d of %d buckets (live nodes: %s)",
                self.node_id,
                len(self.buckets),
                BUCKETS,
                ", ".join(peers),
            )
            self._known.set()
            for changed in self._watchers:
                changed()
        others = [n.last_seen_at for n in live if n.id != self.node_id]
        if not others:
            return float("inf")
        database_now = time.time() - self._clock_offset()
        return min(others) + self._lease_s - database_now + EXPIRY_SLACK_S

    async def _ensure_listener(self) -> None:
        """LISTEN on the nodes' channel; after a lost connection, reload (a NOTIFY was missed)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        if self._listener is not None:
            self._listener_lost = True
            await self._close_listener()
        import asyncpg  # noqa: PLC0415  the optional driver: a default install has none

        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            self._connector.url,
            timeout=CONNECT_TIMEOUT_S,
            server_settings={"application_name": "timerd-listen"},
        )
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(self._terminated)
        self._listener = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        if payload == RELOAD:
            self._reload_asked = True
        self._poke.set()

    def _terminated(self, *_: object) -> None:
        self._listener_lost = True
        self._poke.set()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError):
            conn.terminate()
        except self._connector.errors:
            conn.terminate()
