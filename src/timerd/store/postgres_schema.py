"""PostgreSQL schema migrations: an ordered registry, applied under an advisory lock.

Never edit a released migration; append a new one. The version lives in the one-row
table `timerd_schema`. Every node runs `migrate` at start: the transaction-scoped
advisory lock makes nodes that start together apply each migration once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timerd.errors import DatabaseError

if TYPE_CHECKING:
    from asyncpg import Connection
    from asyncpg.pool import PoolConnectionProxy

    Conn = Connection[Any] | PoolConnectionProxy[Any]

SCHEMA_LOCK_KEY = int.from_bytes(b"timerd\x00\x01", "big")
"""The `pg_advisory_xact_lock` key that serialises schema changes across nodes."""

# Times are double precision epoch seconds, like SQLite's REAL: a Timer read back equals
# the one written, bit for bit (keyset cursors compare stored values with read ones).
# Ids sort bytewise (COLLATE "C"), as in SQLite and Python, whatever the database's locale.
MIGRATIONS: list[str] = [
    # 1: timers with their delivery history and idempotency keys; `version` counts the
    # writes of a timer's state (compare-and-set across nodes), `history_seq` its attempts.
    """
    CREATE TABLE timerd_schema (version integer NOT NULL);
    INSERT INTO timerd_schema (version) VALUES (0);
    CREATE TABLE timers (
        id text COLLATE "C" PRIMARY KEY,
        url text NOT NULL,
        fire_at double precision NOT NULL,
        created_at double precision NOT NULL,
        status text NOT NULL,
        next_at double precision,
        attempts integer NOT NULL DEFAULT 0,
        updated_at double precision NOT NULL,
        fired_at double precision,
        last_status_code integer,
        last_error text,
        history_seq bigint NOT NULL DEFAULT 0,
        version bigint NOT NULL DEFAULT 1
    );
    CREATE INDEX timers_next ON timers (next_at, id) WHERE next_at IS NOT NULL;
    CREATE INDEX timers_status_fire ON timers (status, fire_at, id);
    CREATE TABLE attempts (
        timer_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        attempt integer NOT NULL,
        started_at double precision NOT NULL,
        duration_ms double precision NOT NULL,
        status_code integer,
        error text,
        outcome text NOT NULL,
        PRIMARY KEY (timer_id, seq)
    );
    CREATE TABLE idempotency (
        route text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        body_hash text NOT NULL,
        status integer NOT NULL,
        response text NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (route, key)
    );
    CREATE INDEX idempotency_created ON idempotency (created_at);
    """,
    # 2: the nodes sharing the set (GET /nodes); times are the database's, epoch seconds.
    """
    CREATE TABLE nodes (
        id text COLLATE "C" PRIMARY KEY,
        started_at double precision NOT NULL,
        last_seen_at double precision NOT NULL,
        version text NOT NULL
    );
    """,
    # 3: delivery claims shared by the nodes: who holds a timer, and until when (database
    # time, epoch seconds). Buckets need no column: `hashtext(id) & 1023`, computed from the
    # id that timers_next holds, so paging a node's buckets stays an index-only range scan.
    """
    ALTER TABLE timers ADD COLUMN claimed_by text COLLATE "C",
        ADD COLUMN claim_until double precision;
    """,
]

LATEST_VERSION = len(MIGRATIONS)


async def schema_version(conn: Conn) -> int:
    """Return the database's timerd schema version; 0 for a database without one."""
    if not await conn.fetchval("SELECT to_regclass('timerd_schema') IS NOT NULL"):
        return 0
    version = await conn.fetchval("SELECT max(version) FROM timerd_schema")
    return int(version or 0)


def refuse_newer(current: int) -> None:
    """Raise DatabaseError if the schema is newer than this timerd knows."""
    if current > LATEST_VERSION:
        raise DatabaseError(
            f"the database has schema version {current}, newer than this timerd "
            f"understands ({LATEST_VERSION}); upgrade timerd"
        )


async def migrate(conn: Conn, target: int = LATEST_VERSION) -> int:
    """Bring the schema up to `target` in one transaction; return the version it started from.

    Raises DatabaseError if the schema is newer than this timerd, or if the database holds a
    `timers` table that timerd did not make.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        current = await schema_version(conn)
        refuse_newer(current)
        if current == 0 and await conn.fetchval("SELECT to_regclass('timers') IS NOT NULL"):
            raise DatabaseError("the database has a timers table, but not a timerd one")
        for version in range(current + 1, target + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("UPDATE timerd_schema SET version = $1", version)
    return current
