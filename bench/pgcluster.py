"""The benchmark's own throwaway PostgreSQL: the tests' cluster, made durable and counted.

tests/pg/cluster.py starts it (initdb + pg_ctl under a temporary folder, 127.0.0.1 and a
unix socket only). The tests run it with fsync off; here it is restarted with PostgreSQL's
durable defaults (fsync, synchronous_commit, full_page_writes on), since the SQLite daemon
it is compared with flushes every commit, and with `pg_stat_statements` loaded, which
counts the statements each database ran. Its processes are pinned to the server core, next
to the timerd nodes: the load generator and the receiver keep the other core.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import procs
from targets import ROOT

if str(ROOT) not in sys.path:  # the tests' cluster helper, imported rather than copied
    sys.path.append(str(ROOT))

from tests.pg.cluster import ClusterUnavailable, PgCluster, find_bindir

__all__ = ["PROBE_QUERY", "BenchCluster", "ClusterUnavailable", "Statements", "start", "why_not"]


def why_not() -> str | None:
    """Why no throwaway PostgreSQL can be started here, or None when one can."""
    if find_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl); sh tests/pg/ensure_postgres.sh"
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "the asyncpg driver is not installed (pip install -e '.[postgresql]')"
    return None


RESET_BUNDLE = ("SELECT pg_advisory_unlock_all()", "CLOSE ALL", "UNLISTEN *", "RESET ALL")
"""asyncpg's pool sends these as one simple query when a connection goes back to the pool:
four statements to pg_stat_statements, one round trip on the wire."""

PROBE_QUERY = "SELECT sum(1) FROM timers WHERE status = 'fired'"
"""The bench's own look at the database (a shape timerd never runs), left out of the counts."""
_PROBE_NORMALISED = "SELECT sum($1) FROM timers WHERE status = $2"


@dataclass(frozen=True)
class Statements:
    """What pg_stat_statements counted for one database up to one instant."""

    calls: int
    rows: int
    by_query: dict[str, int]

    @property
    def round_trips(self) -> int:
        """Statements, with each pool reset bundle counted once (it is one message)."""
        bundled = sum(self.by_query.get(q, 0) for q in RESET_BUNDLE)
        return self.calls - bundled + self.by_query.get("RESET ALL", 0)

    def since(self, before: Statements) -> Statements:
        """The statements run between `before` and this snapshot."""
        by_query = {
            q: n - before.by_query.get(q, 0)
            for q, n in self.by_query.items()
            if n > before.by_query.get(q, 0)
        }
        return Statements(self.calls - before.calls, self.rows - before.rows, by_query)

    def top(self, count: int = 6) -> dict[str, int]:
        """The most-run statements, their text shortened to a recognisable head."""
        ranked = sorted(self.by_query.items(), key=lambda kv: -kv[1])[:count]
        return {" ".join(q.split())[:70]: n for q, n in ranked}


@dataclass
class BenchCluster:
    """A running cluster for one benchmark invocation; one fresh database per measurement."""

    cluster: PgCluster

    def stop(self) -> None:
        self.cluster.stop()

    @contextlib.asynccontextmanager
    async def database(self, label: str) -> AsyncIterator[str]:
        """Create an empty database, yield its URL (password included), drop it after."""
        import asyncpg

        name = f"bench_{label.replace('-', '_')}_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(self.cluster.url())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        try:
            yield self.cluster.url(name)
        finally:
            admin = await asyncpg.connect(self.cluster.url())
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()

    async def statements(self, url: str) -> Statements:
        """Snapshot pg_stat_statements for the database `url` names (its own work only)."""
        import asyncpg

        admin = await asyncpg.connect(self.cluster.url())
        try:
            rows = await admin.fetch(
                "SELECT s.query, s.calls, s.rows FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
                url.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
        rows = [r for r in rows if r["query"] != _PROBE_NORMALISED]
        by_query: dict[str, int] = {}
        for row in rows:
            by_query[row["query"]] = by_query.get(row["query"], 0) + int(row["calls"])
        return Statements(sum(by_query.values()), sum(int(r["rows"]) for r in rows), by_query)

    def cpu_s(self) -> float:
        """CPU seconds used by the server so far: live processes plus the reaped ones."""
        pid = self._postmaster_pid()
        if pid is None:
            return 0.0
        total = _stat_cpu(pid, with_children=True)
        for child in _children(pid):
            total += _stat_cpu(child, with_children=False)
        return total

    def pin(self, cpu: int) -> None:
        """Pin the postmaster and its processes to `cpu`; later backends inherit it."""
        pid = self._postmaster_pid()
        if pid is None or not procs.can_pin():
            return
        for each in (pid, *_children(pid)):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(each, {cpu})

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _stat_cpu(pid: int, *, with_children: bool) -> float:
    """utime + stime (and the reaped children's cutime + cstime) of `pid`, in seconds."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def start() -> BenchCluster:
    """Start the tests' cluster, restart it durable with pg_stat_statements, pin it."""
    bindir = find_bindir()
    if bindir is None:
        raise ClusterUnavailable(why_not() or "no PostgreSQL")
    cluster = PgCluster.start(bindir)
    try:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={cluster.port}",
                f"-c unix_socket_directories={cluster.root}",
                "-c shared_preload_libraries=pg_stat_statements",
                "-c max_connections=200",
            ]
        )
        # new options replace the tests' fsync=off ones; the log goes to a file, as pg_ctl's
        # output pipe would otherwise stay open in the server and never reach EOF
        log = str(cluster.root / "server.log")
        cluster._run("pg_ctl", "restart", "-w", "-D", str(cluster.data), "-l", log, "-o", options)
    except BaseException:
        cluster.stop()
        raise
    bench = BenchCluster(cluster)
    bench.pin(procs.SERVER_CPU)
    return bench


async def enable_statements(bench: BenchCluster) -> None:
    """Create the pg_stat_statements view (once per cluster: it lives in `postgres`)."""
    import asyncpg

    admin = await asyncpg.connect(bench.cluster.url())
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await admin.close()
