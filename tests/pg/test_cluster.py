"""The throwaway PostgreSQL itself: reachable only where the tests expect it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.pg.cluster import PgCluster


async def test_listens_on_loopback_and_its_own_socket_only(pg_cluster: PgCluster) -> None:
    conn = await asyncpg.connect(pg_cluster.url())
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW unix_socket_directories") == str(pg_cluster.root)
        assert int(await conn.fetchval("SHOW server_version_num")) >= 140000
    finally:
        await conn.close()
    print(f"throwaway PostgreSQL started in {pg_cluster.started_in_s:.2f} s")


async def test_tcp_needs_the_password(pg_cluster: PgCluster) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg_cluster.url(with_password=False), password="wrong")


async def test_each_test_gets_an_empty_database(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
    finally:
        await conn.close()


@pytest.mark.parametrize(("skip", "outcome"), [("", "1 error"), ("1", "1 skipped")])
def test_without_postgresql_tests_fail_unless_told_to_skip(
    tmp_path: Path, skip: str, outcome: str
) -> None:
    """A machine without PostgreSQL never passes these tests silently."""
    env = {
        **os.environ,
        "TIMERD_PG_BINDIR": str(tmp_path / "no-postgresql-here"),
        "TIMERD_SKIP_POSTGRES": skip,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__)}::test_each_test_gets_an_empty_database",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
        timeout=60,
        check=False,
    )
    assert outcome in done.stdout, done.stdout
    reason = "TIMERD_SKIP_POSTGRES=1" if skip else "ensure_postgres.sh"
    assert reason in done.stdout, done.stdout
