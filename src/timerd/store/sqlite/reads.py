"""The SQLite reads: point reads on a plain connection, lists on aiosqlite connections.

WAL lets them run beside the writer; none of them waits for a commit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from timerd.cursor import Cursor
from timerd.errors import Unavailable
from timerd.models import Attempt, Outcome, Status, Timer
from timerd.store.base import IdempotencyRecord
from timerd.store.sqlite.connections import SqliteParts
from timerd.store.sqlite.statements import (
    COLUMNS,
    TIMER_JSON,
    exact,
    list_query,
    timer_from_json,
    timer_from_row,
)

POINT_READ_BUSY_MS = 20
"""How long a lookup on the event loop's thread may wait for a lock before it goes to the
reader thread (WAL readers almost never wait)."""


class SqliteReads(SqliteParts):
    """The reads of the Store contract."""

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._reader is None:
            raise Unavailable("the store is closed")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise Unavailable(f"the database cannot be read now: {exc}") from None

    async def _read_rows(self, select: str, params: Sequence[Any]) -> list[list[Any]]:
        """Run `select`, whose one column `j` is a json_array per row, as a single step."""
        rows = await self._read(f"SELECT json_group_array(json(j)) FROM ({select})", params)
        result: list[list[Any]] = json.loads(rows[0][0])
        return result

    async def get_timer(self, timer_id: str) -> Timer | None:
        """Return the timer with that id, or None.

        Lookups that arrive in the same turn of the event loop are answered together by
        one query: the read-side twin of group commit (one query per GET, even on the
        loop's own thread, cost more CPU per GET).
        """
        return await self._lookups.get(timer_id)

    async def get_timers(self, timer_ids: Sequence[str]) -> list[Timer]:
        """Return the existing timers among `timer_ids`."""
        found: list[Timer] = []
        for start in range(0, len(timer_ids), 500):
            chunk = timer_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            plain = self._point_read(f"SELECT {COLUMNS} FROM timers WHERE id IN ({marks})", chunk)
            if plain is not None:
                found.extend(timer_from_row(r) for r in plain)
                continue
            select = f"SELECT {TIMER_JSON} FROM timers WHERE id IN ({marks})"
            found.extend(timer_from_json(r) for r in await self._read_rows(select, chunk))
        return found

    def _open_point_reader(self, target: str) -> sqlite3.Connection:
        setup = [
            f"PRAGMA busy_timeout = {POINT_READ_BUSY_MS}",
            "PRAGMA query_only = 1",
            "PRAGMA cache_size = -16000",
        ]
        return self._open_plain(target, setup)

    def _point_read(self, select: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """Run a lookup by primary key on the event loop's own thread; None: use the reader.

        A lookup of a few rows takes microseconds in SQLite, less than the trip to a reader
        thread and back, which was a large part of a GET's cost. On this thread rows come
        back as plain tuples: the
        JSON detour of `_read_rows` is for threads that would hand the GIL over per row.
        WAL readers do not wait for the writer; in the rare case one must wait (busy), the
        lookup goes to the reader thread instead.
        """
        if self._point_reader is None:
            return None
        try:
            # fetchall steps to the end: the read transaction ends with the statement
            return self._point_reader.execute(select, params).fetchall()
        except sqlite3.OperationalError:
            return None

    async def list_timers(
        self, statuses: Collection[Status] | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return a page ordered by `(fire_at, id)` strictly after `after`.

        Every status is its own range of `timers_status_fire`; a page of all statuses takes
        the first `limit` of each range and merges them (no index on `fire_at` alone: it
        would cost every insert, and listing is rare next to creating).
        """
        wanted = sorted(statuses) if statuses is not None else list(Status)
        params: list[Any] = []
        for s in wanted:
            params.extend((s.value, *(after or ()), limit))
        rows = await self._read_rows(list_query(len(wanted), after is not None), (*params, limit))
        return sorted((timer_from_json(r) for r in rows), key=lambda t: (t.fire_at, t.id))

    async def due_keys(self, after: Cursor | None, until: float, limit: int) -> list[Cursor]:
        """Return `(next_at, id)` of live timers due by `until`, after `after`, in order."""
        lower = after or (float("-inf"), "")
        rows = await self._read_rows(
            f"SELECT json_array({exact('next_at')}, id) AS j FROM timers "
            "WHERE next_at IS NOT NULL AND (next_at, id) > (?, ?) AND next_at <= ? "
            "ORDER BY next_at, id LIMIT ?",
            (*lower, until, limit),
        )
        return sorted((float(at), str(tid)) for at, tid in rows)

    async def attempts(self, timer_id: str) -> list[Attempt]:
        """Return the kept attempts of a timer, oldest first."""
        rows = await self._read(
            "SELECT attempt, started_at, duration_ms, status_code, error, outcome "
            "FROM attempts WHERE timer_id = ? ORDER BY seq",
            (timer_id,),
        )
        return [Attempt(timer_id, r[0], r[1], r[2], r[3], r[4], Outcome(r[5])) for r in rows]

    async def attempts_of(self, timer_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        """Return the kept attempts of those of `timer_ids` that have any, oldest first."""
        found: dict[str, list[Attempt]] = {}
        for start in range(0, len(timer_ids), 500):
            chunk = timer_ids[start : start + 500]
            rows = await self._read(
                "SELECT timer_id, attempt, started_at, duration_ms, status_code, error, outcome "
                f"FROM attempts WHERE timer_id IN ({', '.join('?' for _ in chunk)}) "
                "ORDER BY timer_id, seq",
                chunk,
            )
            for r in rows:
                found.setdefault(r[0], []).append(
                    Attempt(r[0], r[1], r[2], r[3], r[4], r[5], Outcome(r[6]))
                )
        return found

    async def count_by_status(self) -> dict[Status, int]:
        """Return how many timers are in each status (an index-only count)."""
        # its own connection (opened with the store): a count walks a whole index and must
        # not hold up point reads
        if self._counter is None:
            raise Unavailable("the store is closed")
        try:
            rows = list(
                await self._counter.execute_fetchall(
                    "SELECT status, count(*) FROM timers GROUP BY status"
                )
            )
        except sqlite3.Error as exc:
            raise Unavailable(f"the database cannot be read now: {exc}") from None
        counts = dict.fromkeys(Status, 0)
        counts.update({Status(r[0]): int(r[1]) for r in rows})
        return counts

    async def get_idempotency(self, route: str, key: str) -> IdempotencyRecord | None:
        """Return the stored first answer for `(route, key)`, or None."""
        rows = await self._read(
            "SELECT route, key, body_hash, status, response, created_at FROM idempotency "
            "WHERE route = ? AND key = ?",
            (route, key),
        )
        return IdempotencyRecord(*rows[0]) if rows else None

    async def count_due(self, until: float) -> int:
        """Return how many live timers are due by `until` (a walk of the due-time index)."""
        rows = await self._read(
            "SELECT count(*) FROM timers WHERE next_at IS NOT NULL AND next_at <= ?", (until,)
        )
        return int(rows[0][0])

    # reads for the status page -------------------------------------------------------------

    @staticmethod
    def list_desc_query(statuses: int, before: bool) -> str:
        """The newest-first listing SELECT: `list_query` read backwards along the same index.

        Parameters: `(status, [fire_at, id,] limit)` for each status, then the page limit.
        """
        where = "status = ?" + (" AND (fire_at, id) < (?, ?)" if before else "")
        arm = (
            f"SELECT * FROM (SELECT {TIMER_JSON}, fire_at, id FROM timers WHERE {where} "
            "ORDER BY fire_at DESC, id DESC LIMIT ?)"
        )
        arms = " UNION ALL ".join([arm] * statuses)
        return f"SELECT j FROM ({arms}) ORDER BY fire_at DESC, id DESC LIMIT ?"

    async def list_timers_desc(
        self, statuses: Collection[Status] | None, limit: int, before: Cursor | None
    ) -> list[Timer]:
        """Return up to `limit` timers ordered by `(fire_at, id)` descending, strictly before
        `before`: the newest-due first. Served by an index like `list_timers`."""
        wanted = sorted(statuses) if statuses is not None else list(Status)
        params: list[Any] = []
        for s in wanted:
            params.extend((s.value, *(before or ()), limit))
        select = self.list_desc_query(len(wanted), before is not None)
        rows = await self._read_rows(select, (*params, limit))
        return sorted(
            (timer_from_json(r) for r in rows), key=lambda t: (t.fire_at, t.id), reverse=True
        )

    async def list_by_id_prefix(self, prefix: str, limit: int, after: str | None) -> list[Timer]:
        """Return up to `limit` timers whose id starts with `prefix`, in id order, after `after`.

        One range of the primary key: reads at most `limit` rows. Ids are ASCII, so every id
        with the prefix sorts below `prefix + "\\x7f"`.
        """
        low = max(prefix, after) if after is not None else prefix
        compare = ">" if after is not None and after >= prefix else ">="
        select = (
            f"SELECT {TIMER_JSON} FROM timers WHERE id {compare} ? AND id < ? ORDER BY id LIMIT ?"
        )
        rows = await self._read_rows(select, (low, prefix + "\x7f", limit))
        return sorted((timer_from_json(r) for r in rows), key=lambda t: t.id)
