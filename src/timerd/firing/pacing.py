"""Delivery pacing: fewer deliveries in flight while the event loop falls behind.

One event loop serves the API and runs every delivery. When deliveries saturate it (a
catch-up after downtime, a large burst), each turn of the loop runs every delivery
callback that is ready, and an API request needs several turns, so with many deliveries
in flight creates wait for every one of them. The governor samples how late a
short sleep wakes up (the loop's lag) and trims the number of deliveries in flight while
the lag is above target, then lets it grow back, so deliveries take what the API leaves.
A loop that is merely waiting on slow receivers has no lag and keeps the full limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

TICK_S = 0.01
"""How often the lag is sampled."""
TARGET_LAG_S = 0.001
"""Lag above which deliveries in flight are trimmed. An API request needs several turns of
the loop, so a create's wait is a multiple of this; a lower target cost no delivery rate in
the catch-up benchmark (BENCHMARKS.md)."""
FLOOR = 16
"""Deliveries in flight never drop below this: delivery must go on under any API load."""
SHRINK = 0.8
GROW = 1.1


def next_limit(limit: int, lag_s: float, ceiling: int) -> int:
    """Return the next limit on deliveries in flight after a tick that saw `lag_s`.

    Both ways multiplicative: from the floor to 512 in under 0.4 s of a quiet loop.
    """
    if lag_s > TARGET_LAG_S:
        return max(min(FLOOR, ceiling), int(limit * SHRINK))
    return min(ceiling, max(limit + 1, int(limit * GROW)))


class LoopLagGovernor:
    """Samples the event loop's lag and feeds `next_limit` into `apply(limit)`."""

    def __init__(self, ceiling: int, apply: Callable[[int], None]) -> None:
        self.ceiling = ceiling
        self.limit = min(FLOOR, ceiling)  # a boot with a backlog starts gently
        self._apply = apply
        apply(self.limit)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling."""
        self._task = asyncio.create_task(self._run(), name="timerd-pacing")

    async def stop(self) -> None:
        """Stop sampling; the limit stays where it is."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _set(self, limit: int) -> None:
        if limit != self.limit:
            self.limit = limit
            self._apply(limit)

    async def _run(self) -> None:
        while True:  # perf_counter: the loop's own clock ticks in whole milliseconds
            asked = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lag_s = time.perf_counter() - asked - TICK_S
            self._set(next_limit(self.limit, lag_s, self.ceiling))
