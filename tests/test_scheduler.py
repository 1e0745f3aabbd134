"""The heap scheduler on a fake clock: no real sleeping."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakes import FakeClock, settle
from timerd.clock import SystemClock
from timerd.firing.scheduler import Scheduler


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_pops_in_due_order(clock: FakeClock) -> None:
    s = Scheduler(clock)
    t0 = clock.now()
    for tid, offset in [("c", 3), ("a", 1), ("d", 4), ("b", 2)]:
        s.push(tid, t0 + offset)
    assert s.pop_due(t0 + 0.5, 10) == []
    assert [tid for _, tid in s.pop_due(t0 + 10, 10)] == ["a", "b", "c", "d"]
    assert len(s) == 0


def test_ties_all_pop_and_respect_limit(clock: FakeClock) -> None:
    s = Scheduler(clock)
    at = clock.now() + 1
    for tid in ["z", "y", "x"]:
        s.push(tid, at)
    first = s.pop_due(at, 2)
    assert [tid for _, tid in first] == ["x", "y"]
    assert [tid for _, tid in s.pop_due(at, 2)] == ["z"]


def test_remove_and_reschedule_leave_no_ghost(clock: FakeClock) -> None:
    s = Scheduler(clock)
    t0 = clock.now()
    s.push("a", t0 + 1)
    s.push("b", t0 + 2)
    assert s.remove("a") == t0 + 1
    assert s.remove("a") is None
    s.push("b", t0 + 5)  # moved later: the old entry must not fire
    assert s.pop_due(t0 + 3, 10) == []
    assert s.pop_due(t0 + 5, 10) == [(t0 + 5, "b")]
    assert s.peek() is None


async def test_sleeper_wakes_at_head_without_real_time(clock: FakeClock) -> None:
    s = Scheduler(clock)
    s.push("a", clock.now() + 30)
    sleeper = asyncio.create_task(s.sleep_until_due(3600))
    await settle(lambda: clock.sleepers == 1)
    clock.advance(29.9)
    await settle()
    assert not sleeper.done()
    clock.advance(0.1)
    await asyncio.wait_for(sleeper, 1)
    assert s.pop_due(clock.now(), 10) == [(clock.now(), "a")]


async def test_earlier_insert_wakes_the_sleeper(clock: FakeClock) -> None:
    s = Scheduler(clock)
    s.push("late", clock.now() + 1000)
    sleeper = asyncio.create_task(s.sleep_until_due(3600))
    await settle(lambda: clock.sleepers == 1)
    s.push("early", clock.now() + 1)
    await asyncio.wait_for(sleeper, 1)  # woke without the clock moving
    assert clock.sleepers == 0


async def test_later_insert_does_not_wake(clock: FakeClock) -> None:
    s = Scheduler(clock)
    s.push("first", clock.now() + 10)
    sleeper = asyncio.create_task(s.sleep_until_due(3600))
    await settle(lambda: clock.sleepers == 1)
    s.push("second", clock.now() + 20)
    await settle()
    assert not sleeper.done()
    sleeper.cancel()


async def test_forward_jump_makes_timers_due(clock: FakeClock) -> None:
    """A laptop waking: the wall clock leaps; the next check sees everything now due."""
    s = Scheduler(clock)
    t0 = clock.now()
    s.push("a", t0 + 600)
    s.push("b", t0 + 7200)
    sleeper = asyncio.create_task(s.sleep_until_due(1.0))  # a bounded nap
    await settle(lambda: clock.sleepers == 1)
    clock.set(t0 + 3 * 3600)
    await asyncio.wait_for(sleeper, 1)
    assert [tid for _, tid in s.pop_due(clock.now(), 10)] == ["a", "b"]


async def test_backward_jump_fires_nothing_early(clock: FakeClock) -> None:
    s = Scheduler(clock)
    t0 = clock.now()
    s.push("a", t0 + 60)
    clock.set(t0 - 3600)
    assert s.pop_due(clock.now(), 10) == []
    sleeper = asyncio.create_task(s.sleep_until_due(1e9))
    await settle(lambda: clock.sleepers == 1)
    clock.set(t0 + 59)
    await settle()
    assert not sleeper.done()
    clock.set(t0 + 60)
    await asyncio.wait_for(sleeper, 1)
    assert s.pop_due(clock.now(), 10) == [(t0 + 60, "a")]


async def test_system_clock_naps_are_bounded() -> None:
    """The real clock never sleeps longer than one nap, so a wake from sleep is noticed."""
    clock = SystemClock(max_nap_s=0.05)
    started = time.monotonic()
    await clock.wait(asyncio.Event(), 3600)
    assert time.monotonic() - started < 1.0


def test_heap_compacts_after_many_reschedules(clock: FakeClock) -> None:
    s = Scheduler(clock)
    for i in range(5000):
        s.push("same", clock.now() + i)
    assert len(s) == 1
    assert len(s._heap) < 3000
