"""The node registry: which `timerd serve` processes share the timer set, and are alive.

On PostgreSQL every node records itself in the `nodes` table and refreshes its row on a
heartbeat (see timerd.store.postgres_nodes). On SQLite one daemon owns the database, so the
set is that daemon alone: `LocalNodes` answers without touching the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from timerd.errors import DatabaseError

WARN_OFFSET_S = 0.05
"""A clock this far off the database's is logged as a warning (SPEC: 50 ms)."""


class ClockSkew(DatabaseError):
    """This node's clock is further off the database's than `max_clock_skew_s` allows."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One live node: its id, when it started and was last seen (epoch seconds), its version."""

    id: str
    started_at: float
    last_seen_at: float
    version: str

    def to_json(self) -> dict[str, Any]:
        """Return the node as `GET /nodes` shows it."""
        return {
            "id": self.id,
            "started_at": self.started_at,
            "last_seen_at": self.last_seen_at,
            "version": self.version,
        }


class NodeRegistry(Protocol):
    """This node's membership in the set, and the list of live nodes."""

    node_id: str

    async def start(self) -> None:
        """Join the set (after the store opened and migrated).

        Raises ClockSkew when this node's clock is too far off the database's, and
        DatabaseError when the database cannot be reached: the node must not start.
        """
        ...

    async def stop(self) -> None:
        """Leave the set at once (a clean stop); calling it twice, or before start, is harmless."""
        ...

    async def live(self) -> list[NodeInfo]:
        """Return the live nodes, by id; Unavailable (503) if the database cannot say now."""
        ...


class LocalNodes:
    """SQLite: one daemon owns the database, so the set is this daemon alone."""

    def __init__(self, node_id: str, version: str) -> None:
        self.node_id = node_id
        self._version = version
        self._started_at = time.time()

    async def start(self) -> None:
        """Note the start time; nothing to register."""
        self._started_at = time.time()

    async def stop(self) -> None:
        """Nothing to leave."""

    async def live(self) -> list[NodeInfo]:
        """Return this daemon, seen now."""
        return [NodeInfo(self.node_id, self._started_at, time.time(), self._version)]
