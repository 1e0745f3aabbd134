"""The service's due loop on a fake clock: windowed paging, catch-up order and rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import Receiver
from tests.fakes import FakeClock, settle
from timerd.delivery.deliverer import Deliverer, DeliveryPolicy
from timerd.firing import due_loop
from timerd.models import Attempt, Status, Timer, new_id
from timerd.service import ServiceLimits, TimerService
from timerd.store import SqliteStore
from timerd.validation import CreateSpec

POLICY = DeliveryPolicy(
    attempt_timeout_s=2,
    max_in_flight=1,
    max_per_host=1,
    max_attempts=3,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    retry_after_max_s=1,
)


def limits(**kw: float) -> ServiceLimits:
    values = {
        "window_s": 60.0,
        "window_max": 100,
        "dispatch_queue_max": 1000,
        "catchup_rate_per_s": 10_000.0,
        "attempts_kept": 5,
        "idempotency_retention_s": 3600.0,
    }
    values.update(kw)
    return ServiceLimits(**values)  # type: ignore[arg-type]


class Harness:
    def __init__(self, tmp_path: Path, clock: FakeClock, lim: ServiceLimits) -> None:
        self.store = SqliteStore(tmp_path / "t.db")
        self.deliverer = Deliverer(POLICY)
        self.clock = clock
        self.service = TimerService(self.store, self.deliverer, clock, lim)

    async def start(self) -> None:
        await self.store.open()
        await self.deliverer.start()

    async def stop(self) -> None:
        await self.service.stop(1.0)
        await self.deliverer.close()
        await self.store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, clock, limits())
    await h.start()
    yield h
    await h.stop()


def stored(url: str, at: float, now: float) -> Timer:
    return Timer(id=new_id(), url=url, fire_at=at, created_at=now, next_at=at, updated_at=now)


async def test_only_the_window_lives_in_memory(
    harness: Harness, clock: FakeClock, receiver: Receiver
) -> None:
    t0 = clock.now()
    far = [stored(receiver.url, t0 + 1 + i, t0) for i in range(600)]  # one a second
    await harness.store.insert_timers(far)
    svc = harness.service
    await svc.start()
    await settle(lambda: len(svc.firing.scheduler) > 0)
    assert len(svc.firing.scheduler) <= 60  # only the next 60 s of timers are loaded
    late = await svc.create([CreateSpec(url=receiver.url, fire_at=t0 + 30.5)])
    biggest = 0
    for step in range(1, 62):
        clock.set(t0 + step * 10)
        expected = min(600, step * 10) + (1 if step * 10 >= 30.5 else 0)
        await receiver.wait_for(expected, timeout_s=10)
        biggest = max(biggest, len(svc.firing.scheduler))
    assert biggest <= 100
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 601
    assert late[0].id in ids
    for hit in receiver.hits:
        assert float(hit.headers["Timerd-Fire-At"]) <= clock.now()


async def test_count_limited_window_pages_through_a_crowded_instant(
    tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> None:
    h = Harness(tmp_path, clock, limits(window_max=100))
    await h.start()
    try:
        t0 = clock.now()
        await h.store.insert_timers([stored(receiver.url, t0 + 5, t0) for _ in range(450)])
        await h.service.start()
        await settle(lambda: len(h.service.firing.scheduler) > 0)
        assert len(h.service.firing.scheduler) <= 100
        clock.set(t0 + 5)
        await receiver.wait_for(450, timeout_s=20)
        assert len(set(receiver.ids())) == 450
    finally:
        await h.stop()


async def test_overdue_timers_fire_oldest_first_at_a_bounded_rate(
    tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> None:
    h = Harness(tmp_path, clock, limits(window_max=1000, catchup_rate_per_s=100))
    await h.start()
    try:
        t0 = clock.now()
        overdue = [stored(receiver.url, t0 - 1000 + i * 0.5, t0) for i in range(250)]
        await h.store.insert_timers(list(reversed(overdue)))
        started = time.monotonic()
        await h.service.start()
        await receiver.wait_for(250, timeout_s=20)
        elapsed = time.monotonic() - started
        # 100 banked tokens, then 100/s: the last of 250 cannot go before ~1.5 s
        assert elapsed >= 1.2
        assert receiver.ids() == [t.id for t in overdue]
    finally:
        await h.stop()


async def test_clock_jump_forward_fires_what_became_due(
    harness: Harness, clock: FakeClock, receiver: Receiver
) -> None:
    t0 = clock.now()
    svc = harness.service
    await svc.start()
    created = await svc.create([CreateSpec(url=receiver.url, fire_at=t0 + 4 * 3600)])
    await settle(lambda: clock.sleepers >= 1)
    clock.set(t0 + 5 * 3600)  # the laptop lid opens five hours later
    (hit,) = await receiver.wait_for(1)
    assert hit.path.endswith(created[0].id)


async def test_cancel_removes_a_scheduled_timer(
    harness: Harness, clock: FakeClock, receiver: Receiver
) -> None:
    t0 = clock.now()
    svc = harness.service
    await svc.start()
    keep, drop = await svc.create(
        [
            CreateSpec(url=receiver.url, fire_at=t0 + 10),
            CreateSpec(url=receiver.url, fire_at=t0 + 5),
        ]
    )
    cancelled = await svc.cancel(drop.id)
    assert cancelled.status is Status.CANCELLED
    assert drop.id not in svc.firing.scheduler
    clock.set(t0 + 20)
    await receiver.wait_for(1)
    await settle(lambda: clock.sleepers >= 1)
    assert receiver.ids() == [keep.id]


async def test_stop_cuts_deliveries_after_grace_and_keeps_them_due(
    tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> None:
    hang = asyncio.Event()

    async def never(_: object) -> object:
        await hang.wait()
        raise AssertionError("unreachable")

    receiver.respond = never  # type: ignore[assignment]
    h = Harness(tmp_path, clock, limits())
    await h.start()
    t0 = clock.now()
    (timer,) = await h.service.create([CreateSpec(url=receiver.url, fire_at=t0)])
    await h.service.start()
    await receiver.wait_for(1)
    await h.service.stop(0.1)
    hang.set()
    row = await h.store.get_timer(timer.id)
    assert row is not None
    assert row.status is Status.PENDING  # not recorded as delivered: it runs again at boot
    await h.deliverer.close()
    await h.store.close()


async def test_a_delivery_frees_its_slot_before_its_outcome_commits(
    harness: Harness, clock: FakeClock, receiver: Receiver
) -> None:
    """One slot (max_in_flight=1) still serves many timers while a commit is slow."""
    gate = asyncio.Event()
    record = harness.store.record_attempts

    async def slow_record(outcomes: Sequence[tuple[Timer, Attempt]]) -> None:
        await gate.wait()
        await record(outcomes)

    harness.store.record_attempts = slow_record  # type: ignore[method-assign]
    t0 = clock.now()
    timers = [stored(receiver.url, t0 - 1, t0) for _ in range(5)]
    await harness.store.insert_timers(timers)
    await harness.service.start()
    await receiver.wait_for(5, timeout_s=10)  # all sent while no outcome could commit
    assert all(
        t.status is Status.PENDING for t in await harness.store.get_timers([t.id for t in timers])
    )
    gate.set()
    await settle(lambda: not harness.service.store.claims)
    rows = await harness.store.get_timers([t.id for t in timers])
    assert sorted(t.status for t in rows) == [Status.FIRED] * 5
    assert sorted(receiver.ids()) == sorted(t.id for t in timers)  # each once


async def test_the_window_fills_in_chunks_without_skipping_any_timer(
    tmp_path: Path, clock: FakeClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(due_loop, "_REFILL_CHUNK", 7)
    h = Harness(tmp_path, clock, limits(window_max=100))
    await h.start()
    try:
        t0 = clock.now()
        timers = [stored(receiver.url, t0 + 1 + i / 10, t0) for i in range(300)]
        await h.store.insert_timers(timers)
        await h.service.start()
        await settle(lambda: len(h.service.firing.scheduler) >= 50)  # several chunks, one per step
        assert len(h.service.firing.scheduler) <= 100
        late = await h.service.create([CreateSpec(url=receiver.url, fire_at=t0 + 2.05)])
        clock.set(t0 + 40)
        await receiver.wait_for(301, timeout_s=20)
        ids = receiver.ids()
        assert len(ids) == len(set(ids)) == 301
        assert late[0].id in ids
    finally:
        await h.stop()
