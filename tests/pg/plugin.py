"""Fixtures for tests on PostgreSQL: one throwaway cluster a session, one database a test.

Without PostgreSQL these tests FAIL, so CI never passes them silently; set
TIMERD_SKIP_POSTGRES=1 to skip them instead (with the reason). `make test` installs the
server first (tests/pg/ensure_postgres.sh).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.pg.cluster import ClusterUnavailable, PgCluster, find_bindir

SKIP_VARIABLE = "TIMERD_SKIP_POSTGRES"


def _unavailable(reason: str) -> None:
    """Skip when asked to, fail otherwise."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"PostgreSQL tests skipped ({SKIP_VARIABLE}=1): {reason}")
    pytest.fail(
        f"{reason}; run `sh tests/pg/ensure_postgres.sh` (as root) to install it, "
        f"or set {SKIP_VARIABLE}=1 to skip the PostgreSQL tests",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """Start a throwaway PostgreSQL for the session, and stop it at the end."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    assert bindir is not None
    try:
        import asyncpg  # noqa: F401  (the test extra brings it)
    except ImportError:
        _unavailable("the asyncpg driver is not installed (pip install -e '.[test]')")
    try:
        cluster = PgCluster.start(bindir)
    except ClusterUnavailable as exc:
        _unavailable(f"the throwaway PostgreSQL did not start: {exc}")
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def fresh_database(cluster: PgCluster) -> AsyncIterator[str]:
    """Create an empty database on `cluster`, yield its URL (password included), drop it."""
    import asyncpg

    name = "timerd_test_" + secrets.token_hex(6)
    admin = await asyncpg.connect(cluster.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield cluster.url(name)
    finally:
        admin = await asyncpg.connect(cluster.url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_url(pg_cluster: PgCluster) -> AsyncIterator[str]:
    """Create an empty database for one test; return its URL (password included)."""
    async with fresh_database(pg_cluster) as url:
        yield url
