"""The PostgreSQL backend's statements and the column arrays they take; no driver here.

Set-wise writes pass one array per column and `unnest` them: one statement (one round
trip) writes any number of rows, and its text never changes, so it is prepared once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from timerd.models import LIVE_STATUSES, Attempt, Status, Timer
from timerd.store.base import IdempotencyRecord

TIMER_COLUMNS = (
    "id, url, fire_at, created_at, status, next_at, attempts, updated_at, fired_at, "
    "last_status_code, last_error"
)
_TIMER_TYPES = (
    "text[]",
    "text[]",
    "float8[]",
    "float8[]",
    "text[]",
    "float8[]",
    "int4[]",
    "float8[]",
    "float8[]",
    "int4[]",
    "text[]",
)


def _unnest(types: Sequence[str], first: int = 1) -> str:
    return "unnest(" + ", ".join(f"${first + i}::{t}" for i, t in enumerate(types)) + ")"


INSERT_TIMERS = f"INSERT INTO timers ({TIMER_COLUMNS}) SELECT * FROM {_unnest(_TIMER_TYPES)}"
INSERT_MISSING = INSERT_TIMERS + " ON CONFLICT (id) DO NOTHING"

UPSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency (route, key, body_hash, status, response, created_at) "
    f"SELECT * FROM {_unnest(('text[]', 'text[]', 'text[]', 'int4[]', 'text[]', 'float8[]'))} "
    "ON CONFLICT (route, key) DO UPDATE SET body_hash = EXCLUDED.body_hash, "
    "status = EXCLUDED.status, response = EXCLUDED.response, created_at = EXCLUDED.created_at "
    "WHERE idempotency.created_at < EXCLUDED.created_at - $7::float8"
)
"""Writes each record unless a fresh one (within the retention, `$7`) holds its key: another
node answered that key first. The writer compares the row count with the records."""

DATABASE_NOW = "extract(epoch from clock_timestamp())::float8"
"""Leases are in the database's clock, whichever node sets or reads them."""

# A change applies unless another node holds the timer under an unexpired lease; it ends
# any claim (this node's own, or an expired one).
UPDATE_IF = (
    "UPDATE timers SET url = $2, fire_at = $3, status = $4, next_at = $5, attempts = $6, "
    "updated_at = $7, fired_at = $8, last_status_code = $9, last_error = $10, "
    "version = version + 1, claimed_by = NULL, claim_until = NULL "
    "WHERE id = $1 AND status = ANY($11::text[]) AND (claimed_by IS NULL "
    f"OR claimed_by = $12::text OR claim_until < {DATABASE_NOW}) "
    "AND ($13::float8 IS NULL OR updated_at = $13::float8)"
)
"""`$13`, the `updated_at` the change was read with (NULL: any): compare-and-set."""

PURGE_IDEMPOTENCY = "DELETE FROM idempotency WHERE created_at < $1"

_LIVE = "timers.status IN (" + ", ".join(f"'{s.value}'" for s in sorted(LIVE_STATUSES)) + ")"
_STATE_COLUMNS = (
    "url",
    "fire_at",
    "status",
    "next_at",
    "attempts",
    "updated_at",
    "fired_at",
    "last_status_code",
    "last_error",
)
_OUTCOME_COLUMNS = (*_STATE_COLUMNS, "attempt", "started_at", "duration_ms", "status_code", "error")
_OUTCOME_TYPES = (
    "text[]",  # id
    "text[]",
    "float8[]",
    "text[]",
    "float8[]",
    "int4[]",
    "float8[]",
    "float8[]",
    "int4[]",
    "text[]",
    "int4[]",  # attempt
    "float8[]",
    "float8[]",
    "int4[]",
    "text[]",
    "text[]",  # outcome
)
# An outcome applies to a live timer whose claim is still the recording node's ($18; NULL
# for a store that never claims); any other (a late outcome, a claim taken over) goes to
# history only.
_APPLIES = f"({_LIVE} AND ($18::text IS NULL OR timers.claimed_by = $18::text))"
# Per outcome, in one statement: an applying one sets the timer's new state and ends the
# claim; every timer that exists takes the next history seq and one history entry; entries
# beyond the newest `$17` go. The CTEs share one snapshot, so the DELETE cannot see the
# entry inserted beside it; it never needs to (kept >= 1).
RECORD_OUTCOMES = (
    "WITH o AS (SELECT * FROM "
    + _unnest(_OUTCOME_TYPES)
    + " AS o (id, "
    + ", ".join(_OUTCOME_COLUMNS)
    + ", outcome)), t AS (UPDATE timers SET "
    + ", ".join(
        f"{c} = CASE WHEN {_APPLIES} THEN o.{c} ELSE timers.{c} END" for c in _STATE_COLUMNS
    )
    + "".join(
        f", {c} = CASE WHEN {_APPLIES} THEN NULL ELSE timers.{c} END"
        for c in ("claimed_by", "claim_until")
    )
    + f", version = timers.version + CASE WHEN {_APPLIES} THEN 1 ELSE 0 END"
    + ", history_seq = timers.history_seq + 1 FROM o WHERE timers.id = o.id "
    "RETURNING timers.id, timers.history_seq), "
    "h AS (INSERT INTO attempts (timer_id, seq, attempt, started_at, duration_ms, status_code, "
    "error, outcome) SELECT o.id, t.history_seq, o.attempt, o.started_at, o.duration_ms, "
    "o.status_code, o.error, o.outcome FROM o JOIN t ON t.id = o.id) "
    "DELETE FROM attempts USING t WHERE attempts.timer_id = t.id "
    "AND attempts.seq <= t.history_seq - $17"
)

SELECT_TIMERS = f"SELECT {TIMER_COLUMNS} FROM timers WHERE id = ANY($1::text[])"

# One bounded range of timers_status_fire per status, merged: listing every status needs no
# index on fire_at alone, which every insert would pay for.
LIST_TIMERS = (
    f"SELECT {', '.join('t.' + c for c in TIMER_COLUMNS.split(', '))} "
    "FROM unnest($1::text[]) AS s (status) CROSS JOIN LATERAL ("
    f"SELECT {TIMER_COLUMNS} FROM timers WHERE timers.status = s.status "
    "AND (timers.fire_at, timers.id) > ($2, $3) ORDER BY timers.fire_at, timers.id LIMIT $4"
    ") AS t ORDER BY t.fire_at, t.id LIMIT $4"
)

LIST_TIMERS_DESC = (
    f"SELECT {', '.join('t.' + c for c in TIMER_COLUMNS.split(', '))} "
    "FROM unnest($1::text[]) AS s (status) CROSS JOIN LATERAL ("
    f"SELECT {TIMER_COLUMNS} FROM timers WHERE timers.status = s.status "
    "AND (timers.fire_at, timers.id) < ($2, $3) "
    "ORDER BY timers.fire_at DESC, timers.id DESC LIMIT $4"
    ") AS t ORDER BY t.fire_at DESC, t.id DESC LIMIT $4"
)

LIST_BY_ID_PREFIX = (
    f"SELECT {TIMER_COLUMNS} FROM timers WHERE id >= $1 AND id > $2 AND id < $3 "
    "ORDER BY id LIMIT $4"
)

COUNT_DUE = "SELECT count(*) FROM timers WHERE next_at IS NOT NULL AND next_at <= $1"

DUE_KEYS = (
    "SELECT next_at, id FROM timers WHERE next_at IS NOT NULL "
    "AND (next_at, id) > ($1, $2) AND next_at <= $3 ORDER BY next_at, id LIMIT $4"
)

BUCKETS = 1024
BUCKET_OF_ID = f"(hashtext(id) & {BUCKETS - 1})"
"""A timer's bucket (see timerd.store.postgres_ownership); the database computes it, so it
is the same on every node, and needs only the id, which timers_next holds."""

DUE_KEYS_OWNED = (
    "SELECT next_at, id FROM timers WHERE next_at IS NOT NULL "
    f"AND (next_at, id) > ($1, $2) AND next_at <= $3 AND {BUCKET_OF_ID} = ANY($5::int4[]) "
    "ORDER BY next_at, id LIMIT $4"
)
"""DUE_KEYS of some buckets only."""

SELECT_ATTEMPTS = (
    "SELECT attempt, started_at, duration_ms, status_code, error, outcome "
    "FROM attempts WHERE timer_id = $1 ORDER BY seq"
)

COUNT_BY_STATUS = "SELECT status, count(*) FROM timers GROUP BY status"


SELECT_ATTEMPTS_OF = (
    "SELECT timer_id, attempt, started_at, duration_ms, status_code, error, outcome "
    "FROM attempts WHERE timer_id = ANY($1::text[]) ORDER BY timer_id, seq"
)

_HISTORY_TYPES = (
    "text[]",
    "int8[]",
    "int4[]",
    "float8[]",
    "float8[]",
    "int4[]",
    "text[]",
    "text[]",
)
# One statement: the timers whose ids are new, each with its history_seq, then the history
# of only those (an existing id keeps its own); returns how many timers went in.
IMPORT_TIMERS = (
    f"WITH ins AS (INSERT INTO timers ({TIMER_COLUMNS}, history_seq) "
    f"SELECT * FROM {_unnest((*_TIMER_TYPES, 'int8[]'))} ON CONFLICT (id) DO NOTHING "
    "RETURNING id), hist AS (INSERT INTO attempts (timer_id, seq, attempt, started_at, "
    "duration_ms, status_code, error, outcome) SELECT * FROM "
    f"{_unnest(_HISTORY_TYPES, first=len(_TIMER_TYPES) + 2)} AS a (timer_id, seq, attempt, "
    "started_at, duration_ms, status_code, error, outcome) "
    "WHERE a.timer_id IN (SELECT id FROM ins)) SELECT count(*) FROM ins"
)

SELECT_IDEMPOTENCY = (
    "SELECT route, key, body_hash, status, response, created_at FROM idempotency "
    "WHERE route = $1 AND key = $2"
)

_STATUS = {s.value: s for s in Status}


def timer_from_row(row: Sequence[Any]) -> Timer:
    """Build a Timer from a row of TIMER_COLUMNS."""
    return Timer._make((*row[:4], _STATUS[row[4]], *row[5:11]))


def timer_arrays(timers: Sequence[Timer]) -> list[list[Any]]:
    """The arguments of INSERT_TIMERS: one list per column."""
    return [
        [t.id for t in timers],
        [t.url for t in timers],
        [t.fire_at for t in timers],
        [t.created_at for t in timers],
        [t.status.value for t in timers],
        [t.next_at for t in timers],
        [t.attempts for t in timers],
        [t.updated_at or t.created_at for t in timers],
        [t.fired_at for t in timers],
        [t.last_status_code for t in timers],
        [t.last_error for t in timers],
    ]


def import_args(records: Sequence[tuple[Timer, Sequence[Attempt]]]) -> list[list[Any]]:
    """The arguments of IMPORT_TIMERS; the first record of an id repeated in `records` wins."""
    fresh: dict[str, tuple[Timer, Sequence[Attempt]]] = {}
    for timer, history in records:
        fresh.setdefault(timer.id, (timer, history))
    timers = [timer for timer, _ in fresh.values()]
    entries = [
        (tid, seq, a) for tid, (_, history) in fresh.items() for seq, a in enumerate(history, 1)
    ]
    return [
        *timer_arrays(timers),
        [len(history) for _, history in fresh.values()],
        [tid for tid, _, _ in entries],
        [seq for _, seq, _ in entries],
        [a.attempt for _, _, a in entries],
        [a.started_at for _, _, a in entries],
        [a.duration_ms for _, _, a in entries],
        [a.status_code for _, _, a in entries],
        [a.error for _, _, a in entries],
        [a.outcome.value for _, _, a in entries],
    ]


def idempotency_arrays(records: Sequence[IdempotencyRecord]) -> list[list[Any]]:
    """The arguments of UPSERT_IDEMPOTENCY: one list per column."""
    return [
        [r.route for r in records],
        [r.key for r in records],
        [r.body_hash for r in records],
        [r.status for r in records],
        [r.response for r in records],
        [r.created_at for r in records],
    ]


def update_args(
    timer: Timer, expect: frozenset[Status], claimant: str, read_at: float | None = None
) -> tuple[Any, ...]:
    """The arguments of UPDATE_IF; `claimant` is this node's claim id, `read_at` the
    `updated_at` the row had when the change read it (None: do not compare)."""
    t = timer
    return (
        t.id,
        t.url,
        t.fire_at,
        t.status.value,
        t.next_at,
        t.attempts,
        t.updated_at,
        t.fired_at,
        t.last_status_code,
        t.last_error,
        sorted(s.value for s in expect),
        claimant,
        read_at,
    )


def outcome_rounds(outcomes: Sequence[tuple[Timer, Attempt]]) -> list[list[tuple[Timer, Attempt]]]:
    """Split outcomes into rounds with one outcome per timer, keeping each timer's order.

    One statement updates a row once; a timer's second outcome in a commit goes to the
    next round (and statement), so it sees the first.
    """
    rounds: list[list[tuple[Timer, Attempt]]] = []
    seen: dict[str, int] = {}
    for outcome in outcomes:
        n = seen.get(outcome[0].id, 0)
        seen[outcome[0].id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(outcome)
    return rounds


def outcome_args(
    outcomes: Sequence[tuple[Timer, Attempt]], kept: int, claimant: str | None = None
) -> list[Any]:
    """The arguments of RECORD_OUTCOMES (one round: one outcome per timer).

    `claimant` None: the store never claims, so any live timer takes its outcome.
    """
    ts = [t for t, _ in outcomes]
    attempts = [a for _, a in outcomes]
    return [
        [t.id for t in ts],
        [t.url for t in ts],
        [t.fire_at for t in ts],
        [t.status.value for t in ts],
        [t.next_at for t in ts],
        [t.attempts for t in ts],
        [t.updated_at for t in ts],
        [t.fired_at for t in ts],
        [t.last_status_code for t in ts],
        [t.last_error for t in ts],
        [a.attempt for a in attempts],
        [a.started_at for a in attempts],
        [a.duration_ms for a in attempts],
        [a.status_code for a in attempts],
        [a.error for a in attempts],
        [a.outcome.value for a in attempts],
        kept,
        claimant,
    ]


def row_count(status: str) -> int:
    """The row count of a command status such as `INSERT 0 5` or `UPDATE 1`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
