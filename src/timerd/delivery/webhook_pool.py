"""Idle keep-alive connections by origin, bounded, with every operation in O(1).

The newest idle connection of an origin is reused first (it is the least likely to have
been closed by the receiver); when the pool is full, the one idle longest, whatever its
origin, is closed. An origin without idle connections has no entry, so thousands of
origins seen once cost nothing afterwards.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from timerd.delivery.webhook_conn import Connection

Origin = tuple[str, str, int]
"""(scheme, host, port): connections are shared only within one."""


class IdlePool:
    """Idle connections: newest first within an origin, oldest evicted first overall."""

    def __init__(self, *, max_idle: int, idle_timeout_s: float) -> None:
        self._max_idle = max_idle
        self._idle_timeout_s = idle_timeout_s
        self._by_origin: dict[Origin, deque[Connection]] = {}
        # every idle connection, oldest first; each origin's deque is in the same order,
        # so the oldest overall is always at the left end of its origin's deque
        self._oldest_first: OrderedDict[Connection, Origin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._oldest_first)

    def origins(self) -> int:
        """Return how many origins have at least one idle connection."""
        return len(self._by_origin)

    def take(self, origin: Origin) -> Connection | None:
        """Return the newest open idle connection to `origin`, or None."""
        pool = self._by_origin.get(origin)
        if pool is None:
            return None
        now = time.monotonic()
        found = None
        while pool:
            conn = pool.pop()
            del self._oldest_first[conn]
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self._idle_timeout_s:
                conn.close()
                continue
            found = conn
            break
        if not pool:
            del self._by_origin[origin]
        return found

    def put(self, origin: Origin, conn: Connection) -> None:
        """Keep `conn` for the next request to `origin`, evicting the oldest if full."""
        if self._max_idle <= 0:
            conn.close()
            return
        if len(self._oldest_first) >= self._max_idle:
            self._evict_oldest()
        conn.idle_since = time.monotonic()
        pool = self._by_origin.get(origin)
        if pool is None:
            pool = self._by_origin[origin] = deque()
        pool.append(conn)
        self._oldest_first[conn] = origin

    def _evict_oldest(self) -> None:
        conn, origin = self._oldest_first.popitem(last=False)
        pool = self._by_origin[origin]
        pool.popleft()  # `conn` itself: see the order kept in __init__
        if not pool:
            del self._by_origin[origin]
        conn.close()

    def close(self) -> None:
        """Close every idle connection and forget them."""
        for conn in self._oldest_first:
            conn.close()
        self._oldest_first.clear()
        self._by_origin.clear()
