"""A hand-driven clock: the scheduler sleeps on it and a test moves time forward or back."""

from __future__ import annotations

import asyncio
import contextlib

from tests.waiting import eventually


class FakeClock:
    """Wall time that only moves when the test says so; waits end when time passes them."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    @property
    def sleepers(self) -> int:
        """How many waits are in progress."""
        return sum(1 for _, fut in self._sleepers if not fut.done())

    async def wait(self, event: asyncio.Event, timeout_s: float) -> None:
        if event.is_set() or timeout_s <= 0:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.t + timeout_s, fut)
        self._sleepers.append(entry)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([fut, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            self._sleepers.remove(entry)

    def set(self, t: float) -> None:
        """Jump to `t` (forward or backward) and wake the waits whose deadline passed."""
        self.t = t
        for deadline, fut in self._sleepers:
            if deadline <= t and not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        """Move forward by `seconds`."""
        self.set(self.t + seconds)


async def settle(condition: object = None, timeout_s: float = 5.0) -> None:
    """Let the event loop run until `condition()` is true (or just a few turns)."""
    if condition is None:
        for _ in range(5):
            await asyncio.sleep(0)
        return
    await eventually(condition, "the condition to hold", timeout_s, interval_s=0.001)  # type: ignore[arg-type]
