"""Changes (cancel, fire, reschedule) that fail or race the due loop, on a fake clock.

The rule under test: whatever a change does, and whether or not it succeeds, the in-memory
schedule ends up agreeing with the timer's row, so no acknowledged timer waits for a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.conftest import Hit, Receiver
from tests.fakes import FakeClock, settle
from tests.test_service import POLICY, limits
from timerd.delivery.deliverer import Deliverer, DeliveryPolicy, DeliveryResult
from timerd.errors import Conflict, Unavailable
from timerd.models import Status, Timer
from timerd.service import TimerService
from timerd.store import SqliteStore
from timerd.validation import CreateSpec, PatchSpec


class FaultyStore(SqliteStore):
    """A real SQLite store whose point reads or updates can be held, then failed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.hold: str | None = None  # "get_timer" or "update_timer"
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def _fault(self, operation: str) -> None:
        if self.hold == operation:
            self.hold = None
            self.entered.set()
            await self.release.wait()
            raise Unavailable("the database is busy (injected)")

    async def get_timer(self, timer_id: str) -> Timer | None:
        await self._fault("get_timer")
        return await super().get_timer(timer_id)

    async def update_timer(self, timer: Timer, expect: frozenset[Status]) -> bool:
        await self._fault("update_timer")
        return await super().update_timer(timer, expect)


Change = Callable[[TimerService, Timer], Awaitable[Timer]]

CHANGES: dict[str, Change] = {
    "cancel": lambda svc, t: svc.cancel(t.id),
    "fire": lambda svc, t: svc.fire_now(t.id),
    "reschedule-url": lambda svc, t: svc.reschedule(t.id, PatchSpec(url=t.url + "x", fire_at=None)),
    "reschedule-time": lambda svc, t: svc.reschedule(
        t.id, PatchSpec(url=None, fire_at=t.fire_at + 1)
    ),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@contextlib.asynccontextmanager
async def _service(
    tmp_path: Path, clock: FakeClock, policy: DeliveryPolicy = POLICY
) -> AsyncIterator[tuple[TimerService, FaultyStore]]:
    store = FaultyStore(tmp_path / "t.db")
    deliverer = Deliverer(policy)
    await store.open()
    await deliverer.start()
    service = TimerService(store, deliverer, clock, limits(window_s=4.0))
    try:
        yield service, store
    finally:
        await service.stop(1.0)
        await deliverer.close()
        await store.close()


@pytest.fixture
async def svc_store(
    tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[TimerService, FaultyStore]]:
    async with _service(tmp_path, clock) as pair:
        yield pair


@pytest.mark.parametrize("failing", ["get_timer", "update_timer"])
@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("in_window", [False, True], ids=["beyond-window", "in-window"])
async def test_a_failed_change_racing_a_refill_strands_nothing(
    svc_store: tuple[TimerService, FaultyStore],
    clock: FakeClock,
    receiver: Receiver,
    failing: str,
    change: str,
    in_window: bool,
) -> None:
    svc, store = svc_store
    t0 = clock.now()
    due_in = 3.0 if in_window else 7.0  # the window is 4 s: 7 s is paged in later
    (timer,) = await svc.create([CreateSpec(url=receiver.url, fire_at=t0 + due_in)])
    await svc.start()
    await settle(lambda: clock.sleepers >= 1)
    assert (timer.id in svc.firing.scheduler) is in_window

    store.hold = failing
    attempt = asyncio.create_task(CHANGES[change](svc, timer))
    await asyncio.wait_for(store.entered.wait(), 5)
    clock.set(t0 + 5.0)  # the window moves past the timer while the change is held
    await settle(lambda: clock.sleepers >= 1 and svc.firing._horizon[0] >= t0 + 8)
    store.release.set()
    with pytest.raises(Unavailable):
        await attempt

    row = await store.get_timer(timer.id)
    assert row is not None
    assert row.status is Status.PENDING
    assert row.url == receiver.url  # the failed change left the row alone
    clock.set(t0 + 8.0)
    (hit,) = await receiver.wait_for(1, timeout_s=5)
    assert hit.path.endswith(timer.id)


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_that_succeeds_during_a_refill_leaves_one_schedule(
    svc_store: tuple[TimerService, FaultyStore],
    clock: FakeClock,
    receiver: Receiver,
    change: str,
) -> None:
    """The refill may page in the old due time meanwhile; the change's own time wins."""
    svc, store = svc_store
    t0 = clock.now()
    timer, sentinel = await svc.create(
        [
            CreateSpec(url=receiver.url, fire_at=t0 + 7.0),
            CreateSpec(url=receiver.url, fire_at=t0 + 15.0),  # delivered after any mistake
        ]
    )
    await svc.start()
    await settle(lambda: clock.sleepers >= 1)
    hold = asyncio.Event()
    update = SqliteStore.update_timer

    async def held_update(timer: Timer, expect: frozenset[Status]) -> bool:
        await hold.wait()
        return await update(store, timer, expect)

    store.update_timer = held_update  # type: ignore[method-assign]
    attempt = asyncio.create_task(CHANGES[change](svc, timer))
    await settle(lambda: timer.id in svc.store.claims)
    clock.set(t0 + 5.0)
    await settle(lambda: clock.sleepers >= 1 and svc.firing._horizon[0] >= t0 + 8)
    hold.set()
    changed = await attempt
    if changed.next_at is None:
        assert timer.id not in svc.firing.scheduler
    clock.set(t0 + 20.0)
    hits = await receiver.wait_for(1 if changed.status is Status.CANCELLED else 2, timeout_s=5)
    await settle(lambda: not svc.store.claims)
    assert receiver.ids()[-1] == sentinel.id
    expected = [] if changed.status is Status.CANCELLED else [timer.id]
    assert [tid for tid in receiver.ids() if tid != sentinel.id] == expected  # once, or never
    if expected:
        path = urlsplit(changed.url).path.rstrip("/")
        assert hits[0].path == f"{path}/{timer.id}"  # sent to the url the change set


async def test_a_timer_queued_behind_a_busy_host_can_be_changed(
    tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> None:
    """Waiting for a delivery slot is not being delivered: no 409 (SPEC)."""
    release = asyncio.Event()

    async def slow(_: Hit) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    receiver.respond = slow
    async with _service(tmp_path, clock) as (svc, _):  # one slot: max_per_host=1
        t0 = clock.now()
        timers = await svc.create([CreateSpec(url=receiver.url, fire_at=t0) for _ in range(4)])
        await svc.start()
        await receiver.wait_for(1)
        await settle(lambda: len(svc.firing._dispatcher) == 4)  # one on the wire, three queued
        on_wire = receiver.ids()[0]
        cancelled, fired, moved = (t for t in timers if t.id != on_wire)
        with pytest.raises(Conflict, match="being delivered"):
            await svc.cancel(on_wire)
        assert (await svc.cancel(cancelled.id)).status is Status.CANCELLED
        assert (await svc.fire_now(fired.id)).status is Status.PENDING
        later = await svc.reschedule(moved.id, PatchSpec(url=None, fire_at=t0 + 60))
        assert later.next_at == t0 + 60
        release.set()
        await receiver.wait_for(2)
        await settle(lambda: not svc.store.claims and len(svc.firing._dispatcher) == 0)
        assert sorted(receiver.ids()) == sorted([on_wire, fired.id])
        clock.set(t0 + 61)
        await receiver.wait_for(3)
        assert receiver.ids()[-1] == moved.id


class FlakyDeliverer(Deliverer):
    """A real deliverer whose first send raises, as a bug in sending would."""

    def __init__(self, policy: DeliveryPolicy) -> None:
        super().__init__(policy)
        self.raised = False

    async def send(self, timer: Timer, attempt: int) -> DeliveryResult:
        if not self.raised:
            self.raised = True
            raise RuntimeError("a bug")
        return await super().send(timer, attempt)


async def test_an_unexpected_error_in_sending_is_a_retried_attempt_not_a_lost_timer(
    tmp_path: Path, clock: FakeClock, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "t.db")
    deliverer = FlakyDeliverer(POLICY)
    await store.open()
    await deliverer.start()
    svc = TimerService(store, deliverer, clock, limits())
    try:
        (timer,) = await svc.create([CreateSpec(url=receiver.url, fire_at=clock.now())])
        await svc.start()
        await settle(lambda: deliverer.raised and not svc.store.claims)
        clock.advance(1.0)  # past the backoff (POLICY's is at most 0.05 s)
        (hit,) = await receiver.wait_for(1)
        assert hit.path.endswith(timer.id)
        await settle(lambda: not svc.store.claims)
        attempts = await store.attempts(timer.id)
        assert [a.outcome.value for a in attempts] == ["retry", "delivered"]
        assert attempts[0].error == "internal error: RuntimeError: a bug"
        assert "failed unexpectedly" in caplog.text
    finally:
        await svc.stop(1.0)
        await deliverer.close()
        await store.close()
