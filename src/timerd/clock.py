"""Time as a dependency: the scheduler asks a `Clock`, so tests can drive it by hand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

MAX_NAP_S = 1.0
"""The longest the system clock sleeps in one go.

asyncio sleeps on the monotonic clock, which stops while a Mac sleeps; waking at least this
often and re-reading the wall clock bounds how late a timer can be after the lid opens.
"""


class Clock(Protocol):
    """Wall-clock time and an interruptible sleep."""

    def now(self) -> float:
        """Return the wall-clock time in epoch seconds."""
        ...

    async def wait(self, event: asyncio.Event, timeout_s: float) -> None:
        """Return when `event` is set or `timeout_s` of this clock's time has passed."""
        ...


class SystemClock:
    """The real clock: `time.time()`, with naps bounded by `MAX_NAP_S`."""

    def __init__(self, max_nap_s: float = MAX_NAP_S) -> None:
        self._max_nap_s = max_nap_s

    def now(self) -> float:
        """Return `time.time()`."""
        return time.time()

    async def wait(self, event: asyncio.Event, timeout_s: float) -> None:
        """Sleep until `event` or the timeout; never longer than one nap."""
        if event.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(timeout_s, self._max_nap_s))):
                await event.wait()
