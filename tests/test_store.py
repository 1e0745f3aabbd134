"""The Store contract, as one test class run against every backend (`BACKENDS`).

`TestStoreContract` runs on SQLite and PostgreSQL; what follows it is SQLite's own (the
file, WAL, its query plans, its writer's batching). PostgreSQL's own: test_store_postgres.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import pytest

from tests.conftest import open_sqlite
from timerd.errors import Conflict, DatabaseError, Unavailable
from timerd.models import LIVE_STATUSES, Attempt, Outcome, Status, Timer, new_id
from timerd.store import IdempotencyRecord, SqliteStore, Store
from timerd.store import sqlite as sqlite_store
from timerd.store.migrations import LATEST_VERSION, MIGRATIONS, migrate
from timerd.store.sqlite import writer as sqlite_writer

T0 = 1_800_000_000.0

StoreFactory = Callable[[], Awaitable[SqliteStore]]


def timer(at: float, **kw: object) -> Timer:
    fields: dict[str, object] = {
        "id": new_id(),
        "url": "http://127.0.0.1:9/hook",
        "fire_at": at,
        "created_at": T0,
        "next_at": at,
        "updated_at": T0,
    }
    fields.update(kw)
    return Timer(**fields)  # type: ignore[arg-type]


async def query_plan(
    tmp_path: Path, sql: str, params: Sequence[object] | Mapping[str, object] = ()
) -> list[str]:
    """The steps of EXPLAIN QUERY PLAN for `sql` on a freshly migrated timerd database."""
    store = await open_sqlite(tmp_path / "t.db")
    await store.close()
    conn = sqlite3.connect(tmp_path / "t.db")
    try:
        return [str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    finally:
        conn.close()


class TestStoreContract:
    """Behaviour every backend must show."""

    async def test_round_trip(self, store: Store) -> None:
        t = timer(T0 + 10)
        await store.insert_timers([t])
        assert await store.get_timer(t.id) == t
        assert await store.get_timer("nope") is None

    async def test_times_round_trip_exactly(self, store: Store) -> None:
        """Cursors compare stored times with what was read: not one bit may change."""
        rng = random.Random(7)
        timers = [timer(T0 + rng.random() * 1e7) for _ in range(300)]
        await store.insert_timers(timers)
        by_id = {t.id: t for t in timers}
        for t in await store.get_timers(list(by_id)):
            assert t.fire_at == by_id[t.id].fire_at
        for at, tid in await store.due_keys(None, T0 + 2e7, 1000):
            assert at == by_id[tid].next_at
        for t in await store.list_timers(None, 1000, None):
            assert t.fire_at == by_id[t.id].fire_at

    async def test_insert_is_all_or_nothing(self, store: Store) -> None:
        existing = timer(T0 + 1)
        await store.insert_timers([existing])
        fresh = timer(T0 + 2)
        with pytest.raises(Conflict):
            await store.insert_timers([fresh, existing])
        assert await store.get_timer(fresh.id) is None

    async def test_concurrent_inserts_share_commits_and_fail_alone(self, store: Store) -> None:
        existing = timer(T0)
        await store.insert_timers([existing])
        batch = [timer(T0 + i) for i in range(200)]
        results = await asyncio.gather(
            *(store.insert_timers([t]) for t in batch),
            store.insert_timers([existing]),
            return_exceptions=True,
        )
        assert all(r is None for r in results[:-1])
        assert isinstance(results[-1], Conflict)
        assert len(await store.get_timers([t.id for t in batch])) == 200

    async def test_pagination_has_no_gaps_or_duplicates(self, store: Store) -> None:
        # ties on fire_at are ordered by id
        timers = [timer(T0 + (i // 7)) for i in range(250)]
        await store.insert_timers(timers)
        seen: list[str] = []
        after = None
        while True:
            page = await store.list_timers(None, 33, after)
            seen.extend(t.id for t in page)
            if len(page) < 33:
                break
            after = (page[-1].fire_at, page[-1].id)
        expected = [t.id for t in sorted(timers, key=lambda t: (t.fire_at, t.id))]
        assert seen == expected

    async def test_list_filters_by_status(self, store: Store) -> None:
        pending = timer(T0 + 1)
        cancelled = timer(T0 + 2, status=Status.CANCELLED, next_at=None)
        await store.insert_timers([pending, cancelled])
        assert [t.id for t in await store.list_timers({Status.CANCELLED}, 10, None)] == [
            cancelled.id
        ]
        assert [t.id for t in await store.list_timers({Status.PENDING}, 10, None)] == [pending.id]

    async def test_due_keys_are_live_ordered_and_bounded(self, store: Store) -> None:
        live = [timer(T0 + i) for i in range(10)]
        done = timer(T0 + 0.5, status=Status.FIRED, next_at=None)
        retrying = timer(T0 - 100, status=Status.RETRYING, next_at=T0 + 3.5)
        await store.insert_timers([*live, done, retrying])
        keys = await store.due_keys(None, T0 + 5, 100)
        assert [k[1] for k in keys] == [t.id for t in live[:4]] + [retrying.id] + [
            live[4].id,
            live[5].id,
        ]
        first = await store.due_keys(None, T0 + 100, 3)
        rest = await store.due_keys(first[-1], T0 + 100, 100)
        assert len(first) == 3
        assert len(first) + len(rest) == 11
        assert not {k[1] for k in first} & {k[1] for k in rest}

    async def test_update_applies_only_from_expected_status(self, store: Store) -> None:
        t = timer(T0 + 5)
        await store.insert_timers([t])
        cancelled = t.evolve(status=Status.CANCELLED, next_at=None, updated_at=T0 + 1)
        assert await store.update_timer(cancelled, frozenset({Status.PENDING}))
        assert not await store.update_timer(
            t.evolve(status=Status.FIRED, next_at=None), frozenset({Status.PENDING})
        )
        assert await store.get_timer(t.id) == cancelled
        assert await store.due_keys(None, T0 + 100, 10) == []

    async def test_record_attempt_keeps_last_n_history(self, store: Store) -> None:
        t = timer(T0)
        await store.insert_timers([t])
        current = t
        for n in range(1, 6):
            current = current.evolve(
                status=Status.RETRYING, attempts=n, next_at=T0 + n, last_error="HTTP 500"
            )
            await store.record_attempts(
                [(current, Attempt(t.id, n, T0 + n, 1.5, 500, "HTTP 500", Outcome.RETRY))]
            )
        history = await store.attempts(t.id)
        assert [a.attempt for a in history] == [3, 4, 5]  # attempts_kept=3, oldest first
        assert (await store.get_timer(t.id)) == current

    async def test_late_outcome_cannot_undo_a_cancel(self, store: Store) -> None:
        t = timer(T0)
        await store.insert_timers([t])
        cancelled = t.evolve(status=Status.CANCELLED, next_at=None)
        await store.update_timer(cancelled, frozenset(LIVE_STATUSES))
        fired = t.evolve(status=Status.FIRED, next_at=None, attempts=1)
        await store.record_attempts(
            [(fired, Attempt(t.id, 1, T0, 1.0, 200, None, Outcome.DELIVERED))]
        )
        stored = await store.get_timer(t.id)
        assert stored is not None
        assert stored.status is Status.CANCELLED

    async def test_outcomes_of_many_timers_commit_together(self, store: Store) -> None:
        timers = [timer(T0 + i) for i in range(300)]
        await store.insert_timers(timers)
        cancelled = timers[0].evolve(status=Status.CANCELLED, next_at=None)
        await store.update_timer(cancelled, frozenset(LIVE_STATUSES))
        outcomes = [
            (
                t.evolve(status=Status.FIRED, next_at=None, attempts=1, fired_at=T0 + 1),
                Attempt(t.id, 1, T0 + 1, 1.0, 200, None, Outcome.DELIVERED),
            )
            for t in timers
        ]
        await store.record_attempts(outcomes)
        after = {t.id: t for t in await store.get_timers([t.id for t in timers])}
        assert after[timers[0].id].status is Status.CANCELLED  # late: history only
        assert all(after[t.id] == o for t, (o, _) in zip(timers[1:], outcomes[1:], strict=True))
        retry = after[timers[1].id].evolve(status=Status.PENDING, next_at=T0 + 5)
        await store.update_timer(retry, frozenset({Status.FIRED}))
        for t in (timers[0], timers[1]):  # a second attempt gets the next history slot
            again = t.evolve(status=Status.FIRED, next_at=None, attempts=2)
            await store.record_attempts(
                [(again, Attempt(t.id, 2, T0 + 9, 1.0, 200, None, Outcome.DELIVERED))]
            )
            assert [a.attempt for a in await store.attempts(t.id)] == [1, 2]

    async def test_idempotency_records_and_purge(self, store: Store) -> None:
        t = timer(T0)
        record = IdempotencyRecord("POST /timers", "k1", "h", 201, '{"id": "x"}', T0)
        await store.insert_timers([t], record)
        assert await store.get_idempotency("POST /timers", "k1") == record
        assert await store.get_idempotency("POST /timers/batch", "k1") is None
        # a stale record (expired, not purged yet) is replaced by the new first answer
        renewed = IdempotencyRecord("POST /timers", "k1", "h2", 201, '{"id": "y"}', T0 + 10)
        await store.insert_timers([timer(T0)], renewed)
        assert await store.get_idempotency("POST /timers", "k1") == renewed
        assert await store.purge_idempotency(T0 + 11) == 1
        assert await store.get_idempotency("POST /timers", "k1") is None

    async def test_two_outcomes_of_one_timer_in_one_commit_apply_in_order(
        self, store: Store
    ) -> None:
        t = timer(T0)
        await store.insert_timers([t])
        retry = t.evolve(status=Status.RETRYING, attempts=1, next_at=T0 + 1, last_error="HTTP 500")
        fired = retry.evolve(status=Status.FIRED, attempts=2, next_at=None, last_error=None)
        await store.record_attempts(
            [
                (retry, Attempt(t.id, 1, T0, 1.0, 500, "HTTP 500", Outcome.RETRY)),
                (fired, Attempt(t.id, 2, T0 + 1, 1.0, 200, None, Outcome.DELIVERED)),
            ]
        )
        assert [a.attempt for a in await store.attempts(t.id)] == [1, 2]
        assert await store.get_timer(t.id) == fired

    async def test_same_key_twice_in_one_commit_keeps_the_last(self, store: Store) -> None:
        first = IdempotencyRecord("POST /timers", "k", "h1", 201, '{"id": "a"}', T0)
        second = IdempotencyRecord("POST /timers", "k", "h2", 201, '{"id": "b"}', T0 + 1)
        a, b = timer(T0), timer(T0)
        await asyncio.gather(store.insert_timers([a], first), store.insert_timers([b], second))
        assert len(await store.get_timers([a.id, b.id])) == 2
        assert await store.get_idempotency("POST /timers", "k") == second

    async def test_insert_missing_skips_existing(self, store: Store) -> None:
        a, b = timer(T0), timer(T0 + 1)
        assert await store.insert_missing([a]) == 1
        assert await store.insert_missing([a, b]) == 1

    async def test_count_by_status(self, store: Store) -> None:
        await store.insert_timers(
            [timer(T0), timer(T0), timer(T0, status=Status.FAILED, next_at=None)]
        )
        counts = await store.count_by_status()
        assert counts[Status.PENDING] == 2
        assert counts[Status.FAILED] == 1
        assert counts[Status.FIRED] == 0


# SQLite only from here on: its file, WAL, query plans and writer (PostgreSQL's own:
# tests/test_store_postgres.py).


class TestSqliteFile:
    """What is particular to the SQLite file."""

    async def test_reopen_keeps_everything(self, tmp_path: Path) -> None:
        path = tmp_path / "t.db"
        store = await open_sqlite(path)
        t = timer(T0)
        await store.insert_timers([t])
        await store.close()
        await store.close()  # idempotent
        again = await open_sqlite(path)
        assert await again.get_timer(t.id) == t
        await again.close()

    async def test_wal_mode_and_private_file_modes(self, tmp_path: Path) -> None:
        path = tmp_path / "sub" / "t.db"
        store = await open_sqlite(path)
        await store.insert_timers([timer(T0)])
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        await store.close()

    async def test_migrates_an_older_schema(self, tmp_path: Path) -> None:
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path, isolation_level=None)
        migrate(conn, target=1)
        conn.execute(
            "INSERT INTO timers (id, url, fire_at, created_at, status, next_at, attempts, "
            "updated_at) VALUES ('old1', 'http://x.example/h', ?, ?, 'pending', ?, 0, ?)",
            (T0, T0, T0, T0),
        )
        conn.close()
        store = await open_sqlite(path)
        old = await store.get_timer("old1")
        assert old is not None
        assert old.url == "http://x.example/h"
        await store.record_attempts(
            [
                (
                    old.evolve(status=Status.FIRED, next_at=None, attempts=1),
                    Attempt("old1", 1, T0, 2.0, 200, None, Outcome.DELIVERED),
                )
            ]
        )
        assert [a.outcome for a in await store.attempts("old1")] == [Outcome.DELIVERED]
        await store.close()
        conn = sqlite3.connect(path)
        assert (
            conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION == len(MIGRATIONS)
        )
        conn.close()

    async def test_refuses_a_newer_schema(self, tmp_path: Path) -> None:
        path = tmp_path / "new.db"
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
        conn.close()
        with pytest.raises(DatabaseError, match="newer"):
            await open_sqlite(path)

    async def test_refuses_a_corrupt_file_without_touching_it(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.db"
        junk = b"this is not sqlite at all" * 400
        path.write_bytes(junk)
        with pytest.raises(DatabaseError):
            await open_sqlite(path)
        assert path.read_bytes() == junk

    async def test_refuses_a_foreign_sqlite_database(self, tmp_path: Path) -> None:
        path = tmp_path / "other.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE stuff (x)")
        conn.close()
        with pytest.raises(DatabaseError, match="not a timerd"):
            await open_sqlite(path)

    async def test_read_only_store_reads_and_never_writes(self, tmp_path: Path) -> None:
        path = tmp_path / "t.db"
        writer = await open_sqlite(path)
        t = timer(T0)
        await writer.insert_timers([t])
        reader = SqliteStore(path, read_only=True)
        await reader.open()
        assert await reader.get_timer(t.id) == t
        with pytest.raises(Unavailable):
            await reader.insert_timers([timer(T0)])
        await reader.close()
        await writer.close()
        with pytest.raises(DatabaseError):
            await SqliteStore(tmp_path / "missing.db", read_only=True).open()
        assert not (tmp_path / "missing.db").exists()

    async def test_full_disk_answers_unavailable_and_keeps_acknowledged(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "t.db"
        store = await open_sqlite(path)
        kept = timer(T0)
        await store.insert_timers([kept])
        writer = store._writer()
        await store._on_writer(lambda: writer.execute("PRAGMA max_page_count = 1"))  # "full"
        big = [timer(T0, url="http://x.example/" + "a" * 1500) for _ in range(50)]
        with pytest.raises(Unavailable):
            await store.insert_timers(big)
        await store._on_writer(lambda: writer.execute("PRAGMA max_page_count = 1073741823"))
        await store.insert_timers(big)  # recovers by itself
        assert await store.get_timer(kept.id) == kept
        await store.close()

    @pytest.mark.parametrize("step", sqlite_store.OUTCOME_STEPS)
    async def test_outcome_writes_find_rows_by_key_never_by_scan(
        self, tmp_path: Path, step: str
    ) -> None:
        """A commit's cost must follow its outcomes, not the size of the table."""
        statement = step.format(kept=20).replace("NEW.", ":")  # the trigger's row as parameters
        names = dict.fromkeys(re.findall(r":(\w+)", statement))
        plan = await query_plan(tmp_path, statement, names)
        assert plan, statement
        assert all(not p.startswith("SCAN") for p in plan), plan
        assert all("PRIMARY KEY" in p for p in plan if p.startswith("SEARCH")), plan

    @pytest.mark.parametrize(
        ("sql", "index"),
        [
            (
                "SELECT next_at, id FROM timers WHERE next_at IS NOT NULL "
                "AND (next_at, id) > (0, '') AND next_at <= 1 ORDER BY next_at, id LIMIT 5",
                "timers_next",
            ),
            (
                "SELECT * FROM timers WHERE status = 'pending' AND (fire_at, id) > (0, '') "
                "ORDER BY fire_at, id LIMIT 5",
                "timers_status_fire",
            ),
        ],
    )
    async def test_queries_use_indexes_not_scans(
        self, tmp_path: Path, sql: str, index: str
    ) -> None:
        plan = " ".join(await query_plan(tmp_path, sql))
        assert index in plan
        assert "TEMP B-TREE" not in plan

    @pytest.mark.parametrize(("statuses", "after"), [(1, False), (1, True), (5, False), (5, True)])
    async def test_listing_reads_bounded_index_ranges(
        self, tmp_path: Path, statuses: int, after: bool
    ) -> None:
        """Each status is one range of timers_status_fire, never a scan of the table."""
        per_status = ("pending", 0.0, "", 5) if after else ("pending", 5)
        sql = sqlite_store.list_query(statuses, after)
        plan = await query_plan(tmp_path, sql, per_status * statuses + (5,))
        searches = [step for step in plan if step.startswith("SEARCH timers")]
        assert len(searches) == statuses, plan
        assert all("timers_status_fire" in step for step in searches), plan
        assert not any(step.startswith("SCAN timers") for step in plan), plan


async def test_writes_from_the_next_loop_turns_join_the_commit_under_concurrency(
    tmp_path: Path,
) -> None:
    """While clients write concurrently, the writer lets the loop turn before it commits,
    so requests read together commit together; otherwise a write commits at once."""
    commits: list[int] = []
    store = await open_sqlite(
        tmp_path / "t.db", on_commit=lambda _s, writes: commits.append(writes)
    )

    async def insert_after(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        await store.insert_timers([timer(T0)])

    try:
        await asyncio.gather(*(insert_after(turns) for turns in (0, 1, 2)))
        assert commits[0] == 1  # no concurrency seen yet: the first write went alone
        flood = sqlite_writer.GATHER_FROM
        await asyncio.gather(*(insert_after(0) for _ in range(flood)))
        commits.clear()
        await asyncio.gather(*(insert_after(turns) for turns in (0, 1, 2)))
        assert commits == [3]
    finally:
        await store.close()


async def test_plain_creates_and_outcomes_commit_as_one_statement(tmp_path: Path) -> None:
    """Each sqlite3 call on the writer must win the GIL back from the event loop: a batch
    of plain creates, or of outcomes only, is one autocommit INSERT; anything else, one
    explicit transaction."""
    store = await open_sqlite(tmp_path / "t.db")
    statements: list[str] = []
    try:
        await store._on_writer(lambda: store._writer().set_trace_callback(statements.append))
        created = [timer(T0), timer(T0 + 1)]
        await store.insert_timers(created)
        assert [s.split()[0] for s in statements] == ["INSERT"]
        statements.clear()
        fired = created[0].evolve(status=Status.FIRED, next_at=None, attempts=1)
        await store.record_attempts(
            [(fired, Attempt(fired.id, 1, T0, 1.0, 200, None, Outcome.DELIVERED))]
        )
        assert statements[0].startswith("INSERT INTO temp.outcomes"), statements
        assert not any(s.startswith(("BEGIN", "COMMIT")) for s in statements), statements
        statements.clear()
        key = IdempotencyRecord("create", "k", "h", 201, "{}", T0)
        await store.insert_timers([timer(T0)], key)
        assert statements[0] == "BEGIN IMMEDIATE", statements
        assert statements[-1] == "COMMIT", statements
        assert await store.get_timer(fired.id) == fired
        assert await store.get_idempotency("create", "k") == key
    finally:
        await store.close()


async def test_api_writes_go_first_and_outcomes_take_a_bounded_share(tmp_path: Path) -> None:
    """Creates queued behind delivery outcomes commit first, and outcomes commit in slices."""
    commits: list[int] = []
    store = await open_sqlite(
        tmp_path / "t.db", on_commit=lambda _s, writes: commits.append(writes)
    )
    try:
        timers = [timer(T0 + i) for i in range(1800)]
        await store.insert_timers(timers)
        commits.clear()
        assert store._writer_thread is not None
        gate = threading.Event()
        store._writer_thread.submit(gate.wait, 10)  # the writer thread is busy meanwhile
        first = asyncio.create_task(store.insert_timers([timer(T0)]))
        await asyncio.sleep(0)  # the write loop takes it and waits for the thread
        share = sqlite_writer.BACKGROUND_ROWS_PER_COMMIT * 3 // 5
        outcome_writes = [
            asyncio.create_task(
                store.record_attempts(
                    [
                        (
                            t.evolve(status=Status.FIRED, next_at=None, attempts=1),
                            Attempt(t.id, 1, T0, 1.0, 200, None, Outcome.DELIVERED),
                        )
                        for t in timers[k * share : (k + 1) * share]
                    ]
                )
            )
            for k in range(3)
        ]
        creates = [asyncio.create_task(store.insert_timers([timer(T0)])) for _ in range(2)]
        await asyncio.sleep(0)
        assert store.queued_writes == 5
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, *outcome_writes, *creates), 10)
        # [first], [2 creates + 1 slice of outcomes], then one slice per commit
        assert commits == [1, 3, 1, 1]
    finally:
        await store.close()


async def test_the_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    """Commits leave checkpoints to a connection of their own (the writer's is a backstop)."""
    path = tmp_path / "t.db"
    store = await open_sqlite(path)
    try:
        writer = store._writer()
        pages = await store._on_writer(
            lambda: writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert pages == sqlite_writer.WRITER_CHECKPOINT_PAGES
        empty = path.stat().st_size
        for start in range(0, 2000, 100):
            await store.insert_timers([timer(T0 + i) for i in range(start, start + 100)])
        async with asyncio.timeout(10):  # the rows reach the database file itself
            while path.stat().st_size <= empty:
                await asyncio.sleep(sqlite_writer.CHECKPOINT_EVERY_S / 5)
    finally:
        await store.close()


async def test_lookups_fall_back_to_the_reader_thread_when_sqlite_is_busy(tmp_path: Path) -> None:
    """Point reads run on the event loop's thread unless SQLite would make them wait."""
    store = await open_sqlite(tmp_path / "t.db")
    try:
        t = timer(T0)
        await store.insert_timers([t])
        assert store._point_reader is not None
        assert await store.get_timer(t.id) == t  # on the loop's thread

        class Busy:
            def execute(self, *_: object) -> None:
                raise sqlite3.OperationalError("database is locked")

            def close(self) -> None:
                pass

        inline, store._point_reader = store._point_reader, Busy()  # type: ignore[assignment]
        try:
            assert await store.get_timer(t.id) == t  # through the reader thread
            assert await store.get_timers([t.id, "missing"]) == [t]
        finally:
            store._point_reader = inline
    finally:
        await store.close()


async def test_closing_waits_for_a_checkpoint_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing never pulls the checkpointer's connection from under a running checkpoint."""
    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_EVERY_S", 0.001)
    for round_ in range(5):
        store = await open_sqlite(tmp_path / f"t{round_}.db")
        for start in range(0, 6000, 2000):
            await store.insert_timers([timer(T0 + i) for i in range(start, start + 2000)])
        await asyncio.sleep(0.002 * round_)  # close at different points of a checkpoint
        await store.close()
        reopened = await open_sqlite(tmp_path / f"t{round_}.db")
        assert len(await reopened.list_timers(None, 10, None)) == 10
        await reopened.close()
