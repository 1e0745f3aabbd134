"""Delivery pacing: the limit on deliveries in flight follows the event loop's lag."""

from __future__ import annotations

import asyncio
import time

import pytest

from timerd.firing import pacing
from timerd.firing.dispatch import Dispatcher
from timerd.models import Timer


@pytest.mark.parametrize(
    ("limit", "lag_s", "ceiling", "expected"),
    [
        (100, 0.010, 512, 80),  # behind: trim
        (17, 0.010, 512, pacing.FLOOR),  # never below the floor
        (8, 0.010, 8, 8),  # nor above a ceiling lower than the floor
        (100, 0.0, 512, 110),  # quiet: grow
        (16, 0.0, 512, 17),  # by at least one
        (500, 0.0, 512, 512),  # up to the ceiling
        (100, pacing.TARGET_LAG_S, 512, 110),  # at target is not behind
    ],
)
def test_next_limit(limit: int, lag_s: float, ceiling: int, expected: int) -> None:
    assert pacing.next_limit(limit, lag_s, ceiling) == expected


async def test_the_governor_trims_while_the_loop_lags_and_recovers_after() -> None:
    seen: list[int] = []
    governor = pacing.LoopLagGovernor(256, seen.append)
    assert governor.limit == pacing.FLOOR  # starts gently
    governor.start()
    try:
        async with asyncio.timeout(10):
            while governor.limit < 256:  # a quiet loop grows to the ceiling
                await asyncio.sleep(pacing.TICK_S)
            while governor.limit >= 256:
                time.sleep(0.02)  # noqa: ASYNC251 -- a busy loop on purpose: ticks wake late
                await asyncio.sleep(0)
            lowest = governor.limit
            while governor.limit < 256:
                await asyncio.sleep(pacing.TICK_S)
        assert lowest < 256
        assert seen[-1] == 256
    finally:
        await governor.stop()


async def test_the_dispatcher_starts_no_more_than_its_limit() -> None:
    release = asyncio.Event()
    running: list[str] = []

    async def deliver(timer: Timer) -> None:
        running.append(timer.id)
        await release.wait()

    dispatcher = Dispatcher(deliver, max_in_flight=10, max_per_host=10)
    dispatcher.set_limit(2)
    for n in range(5):
        dispatcher.submit(Timer(id=f"t{n}", url="http://h.example/", fire_at=0.0, created_at=0.0))
    await asyncio.sleep(0)
    assert len(dispatcher.tasks) == 2
    dispatcher.set_limit(50)  # above max_in_flight: capped there
    await asyncio.sleep(0)
    assert len(dispatcher.tasks) == 5
    release.set()
    await asyncio.wait(dispatcher.tasks, timeout=5)
    assert sorted(running) == [f"t{n}" for n in range(5)]
