"""One way for a test to wait: `eventually(check, what, timeout_s)`, never sleep-and-hope.

`check` is a plain or an async predicate; it is polled until true, and the test fails with
`what` once `timeout_s` has passed. Every polling loop of the suite goes through here.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def eventually(
    check: Check, what: str, timeout_s: float = 10.0, interval_s: float = 0.02
) -> None:
    """Poll `check` every `interval_s` until it is true; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)
