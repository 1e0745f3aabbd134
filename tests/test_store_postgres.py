"""What is particular to the PostgreSQL backend (the contract itself: tests/test_store.py).

The driver, the URL and its password, the schema lock, set-wise commits, the version
column, query plans, a database that cannot take writes, two stores on one database.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.pg.cluster import PgCluster
from tests.test_store import T0, timer
from timerd.errors import DatabaseError, TimerdError, Unavailable
from timerd.models import LIVE_STATUSES, Attempt, Outcome, Status
from timerd.store import (
    PostgresDriverMissing,
    PostgresStore,
    SqliteStore,
    make_store,
    open_store,
    postgres_claims,
    postgres_sql,
)
from timerd.store.postgres import redact_dsn
from timerd.store.postgres_schema import LATEST_VERSION, SCHEMA_LOCK_KEY


async def open_pg(url: str, **kw: object) -> PostgresStore:
    store = PostgresStore(url, attempts_kept=3, **kw)  # type: ignore[arg-type]
    await store.open()
    return store


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = await open_pg(pg_url)
    yield store
    await store.close()


async def query(url: str, statement: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


# the driver and the URL (no server needed) ------------------------------------------------


def test_a_url_without_the_driver_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # `import asyncpg` now fails
    with pytest.raises(PostgresDriverMissing) as caught:
        make_store("postgresql://timerd@db.example/timers")
    assert isinstance(caught.value, TimerdError)
    assert str(caught.value) == (
        "a PostgreSQL database needs its driver: pip install 'timerd[postgresql]'"
    )
    assert isinstance(make_store(tmp_path / "t.db"), SqliteStore)  # SQLite needs nothing


def test_the_default_install_never_imports_the_driver() -> None:
    code = "import sys, timerd.store, timerd.daemon, timerd.cli; print('asyncpg' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("db", "backend"),
    [
        ("postgresql://u@h/d", PostgresStore),
        ("postgres://u:p@h:5433/d?sslmode=require", PostgresStore),
        ("timers.db", SqliteStore),
        ("/var/lib/timerd/postgresql.db", SqliteStore),
        (Path("postgresql.db"), SqliteStore),
    ],
)
def test_make_store_picks_the_backend_from_db(db: str | Path, backend: type) -> None:
    store = make_store(db, attempts_kept=5, synchronous="normal", read_connections=2)
    assert isinstance(store, backend)


def test_urls_are_logged_without_their_password() -> None:
    assert redact_dsn("postgresql://me:s3cret@db:5432/t") == "postgresql://me@db:5432/t"
    assert (
        redact_dsn("postgres://db/t?user=me&password=s3cret&sslmode=require")
        == "postgres://db/t?user=me&password=***&sslmode=require"
    )
    assert redact_dsn("postgresql://db/t") == "postgresql://db/t"


# opening: passwords, failures, the schema -------------------------------------------------


async def test_the_password_may_come_from_pgpassword_or_a_passfile(
    pg_cluster: PgCluster, pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare = pg_url.replace(f":{pg_cluster.password}@", "@")
    monkeypatch.setenv("PGPASSWORD", pg_cluster.password)
    store = await open_pg(bare)
    await store.close()
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_cluster.port}:*:postgres:{pg_cluster.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    store = await open_pg(bare)
    await store.close()


async def test_the_password_never_reaches_logs_or_errors(
    pg_cluster: PgCluster, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = await open_pg(pg_url)
    await store.close()
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(DatabaseError) as caught:
        await open_pg(missing)
    assert "no_such_database" in str(caught.value)
    assert "opened PostgreSQL database" in caplog.text
    assert pg_cluster.password not in caplog.text + str(caught.value)


async def test_an_unreachable_server_is_a_database_error(pg_cluster: PgCluster) -> None:
    closed_port = pg_cluster.url().replace(f":{pg_cluster.port}/", ":1/")
    with pytest.raises(DatabaseError, match="cannot connect to postgresql://postgres@127"):
        await open_pg(closed_port)


async def test_nodes_starting_together_migrate_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(open_pg(pg_url) for _ in range(6)))
    try:
        rows = await query(pg_url, "SELECT version FROM timerd_schema")
        assert [r[0] for r in rows] == [LATEST_VERSION]
        t = timer(T0)
        await stores[0].insert_timers([t])
        assert await stores[-1].get_timer(t.id) == t
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_migration_waits_for_the_schema_lock(pg_url: str) -> None:
    holder = await asyncpg.connect(pg_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK_KEY)
        opening = asyncio.create_task(open_pg(pg_url))
        done, _ = await asyncio.wait({opening}, timeout=0.5)
        assert not done  # blocked on the lock another node holds
        await holder.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK_KEY)
        store = await asyncio.wait_for(opening, 10)
        await store.close()
    finally:
        await holder.close()


async def test_refuses_a_newer_schema(pg: PostgresStore, pg_url: str) -> None:
    await pg.close()
    await query(pg_url, "UPDATE timerd_schema SET version = $1", LATEST_VERSION + 1)
    with pytest.raises(DatabaseError, match="newer"):
        await open_pg(pg_url)
    with pytest.raises(DatabaseError, match="newer"):
        await open_pg(pg_url, read_only=True)


async def test_refuses_a_foreign_timers_table(pg_url: str) -> None:
    await query(pg_url, "CREATE TABLE timers (x integer)")
    with pytest.raises(DatabaseError, match="not a timerd one"):
        await open_pg(pg_url)


async def test_reopen_keeps_everything_and_close_is_idempotent(pg_url: str) -> None:
    store = await open_pg(pg_url)
    t = timer(T0)
    await store.insert_timers([t])
    await store.close()
    await store.close()
    with pytest.raises(Unavailable):
        await store.insert_timers([timer(T0)])
    again = await open_store(pg_url, attempts_kept=3)
    try:
        assert await again.get_timer(t.id) == t
    finally:
        await again.close()


async def test_read_only_store_reads_and_never_writes(pg: PostgresStore, pg_url: str) -> None:
    t = timer(T0)
    await pg.insert_timers([t])
    reader = await open_pg(pg_url, read_only=True)
    try:
        assert await reader.get_timer(t.id) == t
        with pytest.raises(Unavailable):
            await reader.insert_timers([timer(T0)])
    finally:
        await reader.close()


async def test_read_only_on_an_empty_database_says_so(pg_url: str) -> None:
    with pytest.raises(DatabaseError, match="holds no timerd database"):
        await open_pg(pg_url, read_only=True)
    assert await query(pg_url, "SELECT to_regclass('timers')") == [(None,)]


# writes -----------------------------------------------------------------------------------


async def test_creates_queued_together_share_one_commit(pg_url: str) -> None:
    commits: list[int] = []
    store = await open_pg(pg_url, on_commit=lambda _s, writes: commits.append(writes))
    try:
        await asyncio.gather(*(store.insert_timers([timer(T0 + i)]) for i in range(200)))
        assert commits == [200]
    finally:
        await store.close()


async def test_version_counts_each_write_of_a_timers_state(pg: PostgresStore, pg_url: str) -> None:
    async def version(timer_id: str) -> int:
        rows = await query(pg_url, "SELECT version FROM timers WHERE id = $1", timer_id)
        return int(rows[0][0])

    t = timer(T0)
    await pg.insert_timers([t])
    assert await version(t.id) == 1
    retry = t.evolve(status=Status.RETRYING, attempts=1, next_at=T0 + 1)
    await pg.record_attempts([(retry, Attempt(t.id, 1, T0, 1.0, 500, "x", Outcome.RETRY))])
    assert await version(t.id) == 2
    cancelled = retry.evolve(status=Status.CANCELLED, next_at=None)
    assert await pg.update_timer(cancelled, frozenset(LIVE_STATUSES))
    assert await version(t.id) == 3
    assert not await pg.update_timer(cancelled, frozenset(LIVE_STATUSES))  # no write
    late = retry.evolve(status=Status.FIRED, attempts=2, next_at=None)
    await pg.record_attempts([(late, Attempt(t.id, 2, T0, 1.0, 200, None, Outcome.DELIVERED))])
    assert await version(t.id) == 3  # a late outcome only adds history
    assert [a.attempt for a in await pg.attempts(t.id)] == [1, 2]


async def test_two_stores_racing_on_one_timer_change_it_once(pg_url: str) -> None:
    """Compare-on-status holds across processes: the row lock serialises, the loser sees."""
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    try:
        for _ in range(20):
            t = timer(T0)
            await a.insert_timers([t])
            cancelled = t.evolve(status=Status.CANCELLED, next_at=None)
            fired = t.evolve(status=Status.FIRED, next_at=None, attempts=1)
            wins = await asyncio.gather(
                a.update_timer(cancelled, frozenset({Status.PENDING})),
                b.update_timer(fired, frozenset({Status.PENDING})),
            )
            assert sorted(wins) == [False, True]
            assert await b.get_timer(t.id) in (cancelled, fired)
    finally:
        await a.close()
        await b.close()


async def test_a_database_that_refuses_writes_answers_unavailable_then_recovers(
    pg_cluster: PgCluster, pg: PostgresStore, pg_url: str
) -> None:
    database = pg_url.rsplit("/", 1)[1]

    async def set_read_only(on: bool) -> None:
        change = "SET default_transaction_read_only = on" if on else "RESET ALL"
        await query(pg_cluster.url(), f'ALTER DATABASE "{database}" {change}')
        # the writer's session keeps its settings: end it, the pool opens a new one
        await query(
            pg_cluster.url(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )

    kept = timer(T0)
    await pg.insert_timers([kept])
    await set_read_only(True)
    refused = timer(T0)
    with pytest.raises(Unavailable):
        await pg.insert_timers([refused])
    await set_read_only(False)
    async with asyncio.timeout(10):  # the first write may still meet the ended session
        while True:
            try:
                await pg.insert_timers([timer(T0)])
                break
            except Unavailable:
                continue
    assert await pg.get_timer(kept.id) == kept
    assert await pg.get_timer(refused.id) is None


# reads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "args", "index"),
    [
        (postgres_sql.LIST_TIMERS, (["pending", "fired"], 0.0, "", 5), "timers_status_fire"),
        (postgres_sql.DUE_KEYS, (0.0, "", 1.0, 5), "timers_next"),
        (postgres_sql.SELECT_TIMERS, (["a", "b"],), "timers_pkey"),
        (postgres_sql.SELECT_ATTEMPTS, ("a",), "attempts_pkey"),
        (postgres_sql.DUE_KEYS_OWNED, (0.0, "", 1.0, 5, [1, 7]), "timers_next"),
        (postgres_claims.CLAIM_DUE, (["a", "b"], [1.0, 2.0], "node-a", 12.0), "timers_pkey"),
    ],
)
async def test_queries_have_an_index_path(
    pg: PostgresStore, pg_url: str, statement: str, args: tuple[object, ...], index: str
) -> None:
    """With sequential scans priced out, each read still finds an index (none sorts rows)."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + statement, *args))
    finally:
        await conn.close()
    assert index in plan, plan
    assert "Seq Scan on timers" not in plan, plan
    assert "Seq Scan on attempts" not in plan, plan


async def test_outcome_writes_find_rows_by_key(pg: PostgresStore, pg_url: str) -> None:
    t = timer(T0)
    fired = t.evolve(status=Status.FIRED, next_at=None, attempts=1)
    args = postgres_sql.outcome_args(
        [(fired, Attempt(t.id, 1, T0, 1.0, 200, None, Outcome.DELIVERED))], 3
    )
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in await conn.fetch("EXPLAIN " + postgres_sql.RECORD_OUTCOMES, *args)
        )
    finally:
        await conn.close()
    assert "timers_pkey" in plan, plan
    assert "attempts_pkey" in plan, plan
    assert "Seq Scan on" not in plan, plan


async def test_a_user_who_cannot_create_tables_gets_a_database_error(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    """PostgreSQL 15 lets only the owner create in schema public: one line, no traceback."""
    await query(pg_url, "CREATE ROLE timerd_limited LOGIN PASSWORD 'limited'")
    try:
        limited = pg_url.replace(f"postgres:{pg_cluster.password}@", "timerd_limited:limited@")
        with pytest.raises(DatabaseError, match=r"cannot create the schema in .*permission denied"):
            await open_pg(limited)
    finally:
        await query(pg_url, "DROP OWNED BY timerd_limited")
        await query(pg_url, "DROP ROLE timerd_limited")
