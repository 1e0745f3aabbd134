"""The Store reads the status page needs: newest-first listing and lookup by id prefix.

Contract tests (run against every backend in `BACKENDS`) plus the SQLite query plans.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.test_store import T0, query_plan, timer
from timerd.models import Status, Timer
from timerd.store import SqliteStore, Store


def _desc(timers: list[Timer]) -> list[str]:
    return [t.id for t in sorted(timers, key=lambda t: (t.fire_at, t.id), reverse=True)]


class TestNewestFirstContract:
    async def test_pages_backwards_without_gaps_or_duplicates(self, store: Store) -> None:
        rng = random.Random(7)
        timers = [timer(T0 + rng.choice([0, 1, 2]) + rng.random() * 0.001) for _ in range(120)]
        timers += [timer(T0 + 1.5) for _ in range(30)]  # ties broken by id
        await store.insert_timers(timers)
        seen: list[str] = []
        before = None
        while True:
            page = await store.list_timers_desc({Status.PENDING}, 17, before)
            if not page:
                break
            assert len(page) <= 17
            seen += [t.id for t in page]
            before = (page[-1].fire_at, page[-1].id)
        assert seen == _desc(timers)

    async def test_filters_by_status_and_merges_every_status(self, store: Store) -> None:
        statuses = list(Status)
        timers = [
            timer(T0 + i, status=statuses[i % len(statuses)], next_at=None) for i in range(40)
        ]
        await store.insert_timers(timers)
        failed = await store.list_timers_desc({Status.FAILED}, 100, None)
        assert [t.id for t in failed] == _desc([t for t in timers if t.status is Status.FAILED])
        every = await store.list_timers_desc(None, 12, None)
        assert [t.id for t in every] == _desc(timers)[:12]
        after = await store.list_timers_desc(None, 100, (every[-1].fire_at, every[-1].id))
        assert [t.id for t in every + after] == _desc(timers)


class TestIdPrefixContract:
    async def test_finds_every_id_with_the_prefix_in_id_order(self, store: Store) -> None:
        ids = ["abc", "abcd", "abc-x", "abc_y", "abd", "ab", "zzz", "ABC", "abb~"]
        timers = [timer(T0 + i, id=tid) for i, tid in enumerate(ids)]
        timers[2] = timers[2]._replace(status=Status.CANCELLED, next_at=None)
        await store.insert_timers(timers)
        found = await store.list_by_id_prefix("abc", 100, None)
        assert [t.id for t in found] == sorted(["abc", "abcd", "abc-x", "abc_y"])
        assert {t.status for t in found} == {Status.PENDING, Status.CANCELLED}  # every status
        assert [t.id for t in await store.list_by_id_prefix("zzz", 10, None)] == ["zzz"]
        assert await store.list_by_id_prefix("q", 10, None) == []

    async def test_pages_through_a_prefix(self, store: Store) -> None:
        timers = [timer(T0, id=f"pre{i:03d}") for i in range(25)] + [timer(T0, id="prf")]
        await store.insert_timers(timers)
        seen: list[str] = []
        after = None
        while page := await store.list_by_id_prefix("pre", 10, after):
            seen += [t.id for t in page]
            after = page[-1].id
        assert seen == [f"pre{i:03d}" for i in range(25)]
        # a cursor from before the prefix's range starts at the range
        first = await store.list_by_id_prefix("pre", 2, "a")
        assert [t.id for t in first] == ["pre000", "pre001"]


class TestQueryPlans:
    @pytest.mark.parametrize(("statuses", "before"), [(1, False), (1, True), (5, True)])
    async def test_newest_first_reads_the_status_index_backwards(
        self, tmp_path: Path, statuses: int, before: bool
    ) -> None:
        per_status = ("failed", 0.0, "", 5) if before else ("failed", 5)
        sql = SqliteStore.list_desc_query(statuses, before)
        plan = await query_plan(tmp_path, sql, per_status * statuses + (5,))
        searches = [step for step in plan if step.startswith("SEARCH timers")]
        assert len(searches) == statuses, plan
        assert all("timers_status_fire" in step for step in searches), plan
        assert not any(step.startswith("SCAN timers") for step in plan), plan
        # each arm is already in order: only the merge of several statuses sorts
        if statuses == 1:
            assert not any("TEMP B-TREE" in step and "UNION" not in step for step in plan[:-1])

    async def test_id_prefix_is_a_primary_key_range(self, tmp_path: Path) -> None:
        sql = "SELECT id FROM timers WHERE id >= ? AND id < ? ORDER BY id LIMIT ?"
        plan = " ".join(await query_plan(tmp_path, sql, ("abc", "abc\x7f", 5)))
        assert "SEARCH timers USING PRIMARY KEY (id>? AND id<?)" in plan
        assert "TEMP B-TREE" not in plan
