"""The claim contract (`Store.claim_due`, `release_claims`): every backend, then PostgreSQL's
leases between two store objects on one database, as two nodes would race."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.test_store import T0, timer
from timerd.models import LIVE_STATUSES, Attempt, Outcome, Status
from timerd.store import IdempotencyRecord, PostgresStore, Store

LEASE_S = 0.3
"""Node lease and attempt time limit of the racing stores: a claim lasts 0.6 s."""


class TestClaimContract:
    """What `claim_due` promises on every backend."""

    async def test_a_due_timer_is_claimed_once_and_released(self, store: Store) -> None:
        t = timer(T0)
        await store.insert_timers([t])
        first = await store.claim_due([(T0, t.id)])
        assert [c.id for c in first.claimed] == [t.id]
        assert first.claimed[0] == t
        again = await store.claim_due([(T0, t.id)])
        assert (again.claimed, again.moved, again.held) == ([], [], [])
        await store.release_claims([t.id])
        assert [c.id for c in (await store.claim_due([(T0, t.id)])).claimed] == [t.id]

    async def test_moved_gone_and_finished_rows_are_not_claimed(self, store: Store) -> None:
        moved, cancelled, fired = timer(T0), timer(T0), timer(T0)
        await store.insert_timers([moved, cancelled, fired])
        later = moved.evolve(fire_at=T0 + 60, next_at=T0 + 60)
        assert await store.update_timer(later, frozenset(LIVE_STATUSES))
        done = cancelled.evolve(status=Status.CANCELLED, next_at=None)
        assert await store.update_timer(done, frozenset(LIVE_STATUSES))
        delivered = fired.evolve(status=Status.FIRED, next_at=None, attempts=1)
        await store.record_attempts(
            [(delivered, Attempt(fired.id, 1, T0, 1.0, 200, None, Outcome.DELIVERED))]
        )
        due = [(T0, moved.id), (T0, cancelled.id), (T0, fired.id), (T0, "no-such-timer")]
        result = await store.claim_due(due)
        assert result.claimed == []
        assert result.moved == [(T0 + 60, moved.id)]
        assert result.held == []

    async def test_a_change_applies_from_the_row_it_read(self, store: Store) -> None:
        t = timer(T0)
        await store.insert_timers([t])
        moved = t.evolve(fire_at=T0 + 5, next_at=T0 + 5, updated_at=T0 + 1)
        assert await store.change_timer(t, moved)
        cancelled = moved.evolve(status=Status.CANCELLED, next_at=None, updated_at=T0 + 2)
        assert await store.change_timer(moved, cancelled)
        assert not await store.change_timer(moved, moved.evolve(updated_at=T0 + 3))
        assert await store.get_timer(t.id) == cancelled


# PostgreSQL: claims shared by nodes ----------------------------------------------------------


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two nodes with short leases."""
    stores = [
        PostgresStore(
            pg_url,
            attempts_kept=5,
            node_id=name,
            node_lease_s=LEASE_S,
            attempt_timeout_s=LEASE_S,
            idempotency_retention_s=1e5,
        )
        for name in ("node-a", "node-b")
    ]
    for s in stores:
        await s.open()
    yield stores[0], stores[1]
    for s in stores:
        await s.close()


async def test_two_nodes_racing_claim_each_timer_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    timers = [timer(T0 + i / 1000) for i in range(600)]
    await a.insert_timers(timers)
    due = [(t.fire_at, t.id) for t in timers]
    rounds = [await asyncio.gather(a.claim_due(due[i::3]), b.claim_due(due[i::3])) for i in (0, 1)]
    rounds.append(await asyncio.gather(a.claim_due(due), b.claim_due(due)))
    claimed = [c.id for pair in rounds for r in pair for c in r.claimed]
    assert len(claimed) == len(set(claimed)) == len(timers)


async def test_a_foreign_claim_is_held_until_its_lease_ends_then_taken_over(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    t = timer(T0)
    await a.insert_timers([t])
    before = time.time()
    assert [c.id for c in (await a.claim_due([(T0, t.id)])).claimed] == [t.id]
    held = await b.claim_due([(T0, t.id)])
    assert held.claimed == []
    ((look_again_at, held_id),) = held.held
    assert held_id == t.id
    assert before + 2 * LEASE_S - 0.1 < look_again_at < time.time() + 2 * LEASE_S + 0.2
    await asyncio.sleep(max(0.0, look_again_at - time.time()))
    taken = await b.claim_due([(T0, t.id)])
    assert [c.id for c in taken.claimed] == [t.id]


async def test_an_outcome_applies_only_under_the_current_claim(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    t = timer(T0)
    await a.insert_timers([t])
    await a.claim_due([(T0, t.id)])
    await asyncio.sleep(2 * LEASE_S + 0.1)  # a's lease ran out: b takes the timer over
    assert [c.id for c in (await b.claim_due([(T0, t.id)])).claimed] == [t.id]
    stale = t.evolve(status=Status.FIRED, next_at=None, attempts=1)
    await a.record_attempts([(stale, Attempt(t.id, 1, T0, 1.0, 200, None, Outcome.DELIVERED))])
    assert await a.get_timer(t.id) == t  # a's late outcome: history only
    assert [h.attempt for h in await a.attempts(t.id)] == [1]
    retry = t.evolve(status=Status.RETRYING, next_at=T0 + 5, attempts=1)
    await b.record_attempts([(retry, Attempt(t.id, 1, T0, 1.0, 500, "HTTP 500", Outcome.RETRY))])
    assert await a.get_timer(t.id) == retry
    assert len(await a.attempts(t.id)) == 2
    # the outcome ended b's claim: the retry is free for whoever holds it next (a's due
    # loop settled its own attempt, which frees it in the process)
    a.claims.release(t.id)
    assert [c.id for c in (await a.claim_due([(T0 + 5, t.id)])).claimed] == [t.id]


async def test_a_change_is_refused_under_a_foreign_claim_and_ends_its_own(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    t = timer(T0)
    await a.insert_timers([t])
    await a.claim_due([(T0, t.id)])
    cancelled = t.evolve(status=Status.CANCELLED, next_at=None)
    assert not await b.update_timer(cancelled, frozenset(LIVE_STATUSES))
    assert await b.get_timer(t.id) == t
    moved = t.evolve(fire_at=T0 + 9, next_at=T0 + 9)
    assert await a.update_timer(moved, frozenset(LIVE_STATUSES))  # its own claim: ends it
    assert [c.id for c in (await b.claim_due([(T0 + 9, t.id)])).claimed] == [t.id]
    await asyncio.sleep(2 * LEASE_S + 0.1)
    assert await a.update_timer(cancelled, frozenset(LIVE_STATUSES))  # b's lease ran out


async def test_released_claims_go_to_another_node_at_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    timers = [timer(T0 + i) for i in range(5)]
    await a.insert_timers(timers)
    due = [(t.fire_at, t.id) for t in timers]
    assert len((await a.claim_due(due)).claimed) == 5
    assert len((await b.claim_due(due)).held) == 5
    await a.release_claims([t.id for t in timers])
    assert len((await b.claim_due(due)).claimed) == 5


async def test_a_fresh_idempotency_key_of_another_node_is_never_replaced(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    first = IdempotencyRecord("POST /timers", "k", "h", 201, '{"id": "a"}', T0)
    second = IdempotencyRecord("POST /timers", "k", "h", 201, '{"id": "b"}', T0 + 1)
    ta, tb = timer(T0), timer(T0)
    results = await asyncio.gather(
        a.insert_timers([ta], first), b.insert_timers([tb], second), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
    winner = first if results[0] is None else second
    assert await a.get_idempotency("POST /timers", "k") == winner
    assert len(await a.get_timers([ta.id, tb.id])) == 1  # the refused create wrote nothing
    expired = IdempotencyRecord("POST /timers", "k", "h", 201, '{"id": "c"}', T0 + 2e5)
    await b.insert_timers([timer(T0)], expired)  # past the retention: replaced
    assert await a.get_idempotency("POST /timers", "k") == expired


async def test_two_nodes_changing_one_timer_from_the_same_read_apply_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    t = timer(T0)
    await a.insert_timers([t])
    moved = t.evolve(fire_at=T0 + 5, next_at=T0 + 5, updated_at=T0 + 1)
    cancelled = t.evolve(status=Status.CANCELLED, next_at=None, updated_at=T0 + 1.5)
    assert await a.change_timer(t, moved)
    assert not await b.change_timer(t, cancelled)  # same status, but not the row b read
    assert await b.get_timer(t.id) == moved
