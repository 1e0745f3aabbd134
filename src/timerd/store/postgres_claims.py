"""Delivery claims on PostgreSQL: one statement per popped batch decides who delivers.

A claim is a lease in the row (`claimed_by`, `claim_until` in the database's clock): the
statement takes the batch's rows that are live, still due at the popped key, and free (or
held under an expired lease, or this node's own), locking them with SKIP LOCKED, so two
nodes racing for one timer never both get it. The same statement reports the rows it did
not take, so the caller knows when to look again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from timerd.cursor import Cursor
from timerd.models import LIVE_STATUSES
from timerd.store import postgres_sql as sql
from timerd.store.claims import SAME_INSTANT_S, ClaimKind, ClaimResult, LocalClaims
from timerd.store.postgres_connect import Connector

if TYPE_CHECKING:
    import asyncpg

LOCKED_RETRY_S = 0.5
"""A row another transaction was writing when we tried: look again this much later."""
LEASE_END_SLACK_S = 0.05
"""Look at a row held by another node this long after its lease ends."""

_LIVE = "(" + ", ".join(f"'{s.value}'" for s in sorted(LIVE_STATUSES)) + ")"
_COLUMNS = sql.TIMER_COLUMNS.split(", ")
_NOW = sql.DATABASE_NOW

# $1 ids, $2 their popped keys, $3 this node's claim id, $4 the lease in seconds. Claimed
# rows come back with `mine` and every column; the others with what says why not (read in
# the statement's snapshot: a row claimed by a racing node meanwhile shows no claim, and
# is looked at again shortly).
CLAIM_DUE = (
    "WITH want AS (SELECT * FROM unnest($1::text[], $2::float8[]) AS w (id, key)), "
    "due AS (SELECT timers.id FROM timers JOIN want ON timers.id = want.id "
    f"WHERE timers.status IN {_LIVE} AND abs(timers.next_at - want.key) <= {SAME_INSTANT_S!r} "
    "AND (timers.claimed_by IS NULL OR timers.claimed_by = $3::text "
    f"OR timers.claim_until < {_NOW}) FOR UPDATE OF timers SKIP LOCKED), "
    f"claimed AS (UPDATE timers SET claimed_by = $3::text, claim_until = {_NOW} + $4::float8 "
    "FROM due WHERE timers.id = due.id RETURNING "
    + ", ".join(f"timers.{c}" for c in _COLUMNS)
    + ") SELECT true AS mine, "
    + ", ".join(f"claimed.{c}" for c in _COLUMNS)
    + ", NULL::text, NULL::float8 FROM claimed UNION ALL SELECT false, "
    + ", ".join(f"t.{c}" for c in _COLUMNS)
    + ", t.claimed_by, t.claim_until FROM timers t JOIN want ON t.id = want.id "
    "WHERE t.id NOT IN (SELECT id FROM claimed)"
)

RELEASE = (
    "UPDATE timers SET claimed_by = NULL, claim_until = NULL "
    "WHERE id = ANY($1::text[]) AND claimed_by = $2::text"
)

_NEXT_AT = _COLUMNS.index("next_at") + 1
_STATUS = _COLUMNS.index("status") + 1
_CLAIMED_BY = len(_COLUMNS) + 1


class PostgresClaims:
    """This node's delivery claims in the database, beside its in-process ones."""

    def __init__(
        self,
        connector: Connector,
        local: LocalClaims,
        claimant: str,
        *,
        node_lease_s: float,
        attempt_timeout_s: float,
    ) -> None:
        self._connector = connector
        self._local = local
        self.claimant = claimant
        self.lease_s = node_lease_s + attempt_timeout_s
        """How long a claim holds: an attempt may start within `node_lease_s` of the claim,
        and takes at most `attempt_timeout_s`."""
        self._start_within_s = node_lease_s

    async def claim_due(self, pool: asyncpg.Pool, due: Sequence[Cursor]) -> ClaimResult:
        """Claim the due, free rows of `due` in one statement; see `Store.claim_due`."""
        local = self._local
        wanted = [(at, tid) for at, tid in due if tid not in local]
        if not wanted:
            return ClaimResult([])
        started = time.monotonic()
        try:
            rows = await pool.fetch(
                CLAIM_DUE,
                [tid for _, tid in wanted],
                [at for at, _ in wanted],
                self.claimant,
                self.lease_s,
            )
        except self._connector.errors as exc:
            raise self._connector.unavailable(exc, "be read") from None
        keys = {tid: at for at, tid in wanted}
        result = ClaimResult([], send_by=started + self._start_within_s)
        for row in rows:
            self._sort(row, keys, result)
        return result

    def _sort(self, row: Any, keys: dict[str, float], result: ClaimResult) -> None:
        """Put one returned row where it belongs in `result`."""
        timer = sql.timer_from_row(row[1:_CLAIMED_BY])
        if row[0]:
            if timer.id in self._local:  # a change began here meanwhile: it ends our claim
                return
            self._local.take(timer.id, ClaimKind.DELIVERY)
            result.claimed.append(timer)
            return
        if timer.status not in LIVE_STATUSES or timer.next_at is None:
            return
        if abs(timer.next_at - keys[timer.id]) > SAME_INSTANT_S:
            result.moved.append((timer.next_at, timer.id))
            return
        holder, until = row[_CLAIMED_BY], row[_CLAIMED_BY + 1]
        if holder is not None and holder != self.claimant and until is not None:
            result.held.append((float(until) + LEASE_END_SLACK_S, timer.id))
        else:  # being written by another transaction, or claimed by a racing node
            result.held.append((time.time() + LOCKED_RETRY_S, timer.id))

    async def release(self, pool: asyncpg.Pool, timer_ids: Sequence[str]) -> None:
        """End this node's claims on `timer_ids`, here and in the database."""
        for timer_id in timer_ids:
            self._local.release(timer_id)
        if not timer_ids:
            return
        try:
            await pool.execute(RELEASE, list(timer_ids), self.claimant)
        except self._connector.errors as exc:
            raise self._connector.unavailable(exc, "take writes") from None
