"""Fair, bounded dispatch of due timers to delivery slots.

Due timers wait in one queue per host; only deliveries that run are tasks. A host gets at
most `max_per_host` of the `max_in_flight` slots, and hosts with waiting timers take turns,
so timers aimed at a host that hangs queue behind each other and never hold the slots that
healthy hosts need. Queues instead of tasks blocked on semaphores: CPython 3.11's
`Semaphore.acquire` scans its waiters, which made a 20,000-timer burst quadratic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from timerd.delivery.deliverer import host_key
from timerd.models import Timer

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs `deliver(timer)` for submitted timers within global and per-host limits."""

    def __init__(
        self, deliver: Callable[[Timer], Awaitable[None]], max_in_flight: int, max_per_host: int
    ) -> None:
        self._deliver = deliver
        self._max_in_flight = max_in_flight
        self._limit = max_in_flight
        self._max_per_host = max_per_host
        self._queues: dict[str, deque[Timer]] = {}
        self._waiting_host: dict[str, str] = {}  # id -> host key, for withdraw()
        self._ready: deque[str] = deque()  # hosts with waiting timers and a free slot
        self._in_ready: set[str] = set()
        self._active: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.queued = 0
        self.slot_free = asyncio.Event()
        self.draining = False

    def __len__(self) -> int:
        """Timers waiting or being delivered."""
        return self.queued + len(self.tasks)

    def set_limit(self, limit: int) -> None:
        """Allow `limit` deliveries in flight (at most max_in_flight); see timerd.pacing."""
        self._limit = min(limit, self._max_in_flight)
        self._pump()

    def submit(self, timer: Timer) -> None:
        """Queue a due timer behind the others of its host, and start what may start."""
        key = host_key(timer.url)
        self._queues.setdefault(key, deque()).append(timer)
        self._waiting_host[timer.id] = key
        self.queued += 1
        self._mark_ready(key)
        self._pump()

    def withdraw(self, timer_id: str) -> bool:
        """Take a waiting timer out of its queue; False if it is not waiting (or running)."""
        key = self._waiting_host.pop(timer_id, None)
        if key is None:
            return False
        queue = self._queues[key]
        for index, timer in enumerate(queue):
            if timer.id == timer_id:
                del queue[index]
                break
        if not queue:
            del self._queues[key]  # _pump skips a ready host whose queue is gone
        self.queued -= 1
        return True

    def drain(self) -> list[Timer]:
        """Stop starting deliveries; return the timers that were still waiting."""
        self.draining = True
        waiting = [timer for queue in self._queues.values() for timer in queue]
        self._queues.clear()
        self._waiting_host.clear()
        self._ready.clear()
        self._in_ready.clear()
        self.queued = 0
        return waiting

    def _mark_ready(self, key: str) -> None:
        if (
            key not in self._in_ready
            and key in self._queues
            and self._active.get(key, 0) < self._max_per_host
        ):
            self._ready.append(key)
            self._in_ready.add(key)

    def _pump(self) -> None:
        while self._ready and len(self.tasks) < self._limit and not self.draining:
            key = self._ready.popleft()
            self._in_ready.discard(key)
            queue = self._queues.get(key)
            if not queue:
                continue
            timer = queue.popleft()
            del self._waiting_host[timer.id]
            self.queued -= 1
            if not queue:
                del self._queues[key]
            self._active[key] = self._active.get(key, 0) + 1
            task = asyncio.create_task(self._run(key, timer))  # unnamed: names cost on a hot path
            self.tasks.add(task)
            task.add_done_callback(self._done)
            self._mark_ready(key)  # round robin: back of the line if it has more

    async def _run(self, key: str, timer: Timer) -> None:
        try:
            await self._deliver(timer)
        finally:
            left = self._active[key] - 1
            if left:
                self._active[key] = left
            else:
                del self._active[key]
            self._mark_ready(key)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a delivery failed unexpectedly", exc_info=task.exception())
        self.slot_free.set()
        self._pump()
