"""The in-memory schedule: a heap of `(next_at, id)` and the wait until its head is due.

Entries are deleted lazily: `_keys` holds the one live key per id, and heap entries that
disagree with it are skipped when they reach the top. Only timers due within the window
live here (the service pages them in from the store), so the heap stays small.
"""

from __future__ import annotations

import asyncio
import heapq

from timerd.clock import Clock


class Scheduler:
    """A min-heap of due times with an interruptible wait for the earliest one."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, str]] = []
        self._keys: dict[str, float] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, timer_id: object) -> bool:
        return timer_id in self._keys

    def push(self, timer_id: str, at: float) -> None:
        """Schedule `timer_id` at `at`, replacing any earlier entry; wake the waiter if first."""
        if self._keys.get(timer_id) == at:
            return
        head = self.peek()
        self._keys[timer_id] = at
        heapq.heappush(self._heap, (at, timer_id))
        if head is None or at < head[0]:
            self._wake.set()
        if len(self._heap) > 2 * len(self._keys) + 1024:
            self._compact()

    def remove(self, timer_id: str) -> float | None:
        """Unschedule `timer_id`; return when it was due, or None if it was not scheduled."""
        return self._keys.pop(timer_id, None)

    def peek(self) -> tuple[float, str] | None:
        """Return the earliest live `(at, id)` without removing it."""
        heap = self._heap
        while heap:
            at, timer_id = heap[0]
            if self._keys.get(timer_id) == at:
                return at, timer_id
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float, limit: int) -> list[tuple[float, str]]:
        """Remove and return up to `limit` entries due at or before `now`, earliest first."""
        due: list[tuple[float, str]] = []
        heap, keys = self._heap, self._keys
        while heap and len(due) < limit:
            at, timer_id = heap[0]
            if keys.get(timer_id) != at:
                heapq.heappop(heap)
                continue
            if at > now:
                break
            heapq.heappop(heap)
            del keys[timer_id]
            due.append((at, timer_id))
        return due

    async def sleep_until_due(self, limit_s: float) -> None:
        """Sleep until the head is due, a wake-up, or `limit_s` seconds, whichever is first.

        The delay is recomputed from the wall clock on every call, so callers that loop
        never drift and notice a clock that jumped while they slept.
        """
        self._wake.clear()
        head = self.peek()
        delay = limit_s if head is None else min(limit_s, head[0] - self._clock.now())
        if delay <= 0:
            return
        await self._clock.wait(self._wake, delay)

    def wake(self) -> None:
        """End the current sleep now: the caller has something else to do first."""
        self._wake.set()

    def _compact(self) -> None:
        self._heap = [(at, timer_id) for timer_id, at in self._keys.items()]
        heapq.heapify(self._heap)
