"""The SQLite store's statements and row mapping: SQL text and Timer <-> row.

Pure functions and constants: no connection here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from timerd.models import LIVE_STATUSES, Attempt, Status, Timer

_LIVE = tuple(s.value for s in LIVE_STATUSES)

COLUMNS = ", ".join(Timer._fields)  # so that a Timer is its own row (see timer_row)
COLUMN_COUNT = len(Timer._fields)
INSERT = f"INSERT INTO timers ({COLUMNS})"
INSERT_MISSING = f"INSERT OR IGNORE INTO timers ({COLUMNS})"
_INSERT_HISTORY = (
    "INSERT INTO attempts (timer_id, seq, attempt, started_at, duration_ms, status_code, error, "
    "outcome)"
)
SET_STATE = (
    "status = ?, next_at = ?, attempts = ?, updated_at = ?, fired_at = ?, "
    "last_status_code = ?, last_error = ?"
)
# Delivery outcomes are inserted into a temp view whose INSTEAD OF trigger applies each
# row and stores nothing: one multi-row INSERT step per commit does all the work in C.
# Every sqlite3 call hands the GIL to and from the writer thread, and with the event loop
# busy each hand-back waits for it, so fewer calls per commit is what keeps commits short.
_OUTCOME_COLUMNS = (
    "id, url, fire_at, status, next_at, attempts, updated_at, fired_at, last_status_code, "
    "last_error, attempt, started_at, duration_ms, outcome"
)
OUTCOME_WIDTH = len(_OUTCOME_COLUMNS.split(", "))
INSERT_OUTCOMES = f"INSERT INTO temp.outcomes ({_OUTCOME_COLUMNS})"
CREATE_OUTCOMES = "CREATE TEMP VIEW IF NOT EXISTS outcomes AS SELECT " + ", ".join(
    f"NULL AS {column}" for column in _OUTCOME_COLUMNS.split(", ")
)
# What the trigger runs for each outcome, in order: the history entry takes seq
# history_seq + 1; a late outcome (the timer is no longer live) only moves the seq; a
# live timer takes the outcome and the seq in one rewrite; history beyond `kept` goes.
# Each statement finds its rows by primary key (EXPLAIN QUERY PLAN pinned in the tests).
OUTCOME_STEPS = (
    "INSERT INTO attempts (timer_id, seq, attempt, started_at, duration_ms, status_code, "
    "error, outcome) SELECT NEW.id, history_seq + 1, NEW.attempt, NEW.started_at, "
    "NEW.duration_ms, NEW.last_status_code, NEW.last_error, NEW.outcome "
    "FROM timers WHERE id = NEW.id",
    "UPDATE timers SET history_seq = history_seq + 1 "
    f"WHERE id = NEW.id AND status NOT IN {_LIVE!r}",
    "UPDATE timers SET url = NEW.url, fire_at = NEW.fire_at, status = NEW.status, "
    "next_at = NEW.next_at, attempts = NEW.attempts, updated_at = NEW.updated_at, "
    "fired_at = NEW.fired_at, last_status_code = NEW.last_status_code, "
    "last_error = NEW.last_error, history_seq = history_seq + 1 "
    f"WHERE id = NEW.id AND status IN {_LIVE!r}",
    "DELETE FROM attempts WHERE timer_id = NEW.id "
    "AND seq <= (SELECT history_seq FROM timers WHERE id = NEW.id) - {kept}",
)


def outcome_trigger(kept: int) -> str:
    """The temp trigger that applies each outcome row; `kept`: history entries per timer."""
    body = " ".join(step.format(kept=int(kept)) + ";" for step in OUTCOME_STEPS)
    head = "CREATE TEMP TRIGGER IF NOT EXISTS apply_outcome INSTEAD OF INSERT ON outcomes"
    return f"{head} BEGIN {body} END"


_ROWS_PER_STATEMENT = 500
"""Rows per multi-row INSERT: one sqlite3 step (and one GIL hand-off) inserts them all."""


def _values(width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * rows)


def insert_rows(
    conn: sqlite3.Connection, head: str, width: int, rows: Sequence[tuple[Any, ...]]
) -> int:
    """Insert `rows` with multi-row VALUES statements; return how many rows were inserted."""
    inserted = 0
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        params = [value for row in chunk for value in row]
        cursor = conn.execute(f"{head} VALUES {_values(width, len(chunk))}", params)
        inserted += cursor.rowcount
    return inserted


def one_statement(batch: list[Write]) -> tuple[str, int, list[tuple[Any, ...]]] | None:
    """The batch as one INSERT, if it is only creates (no keys) or only delivery outcomes.

    Every sqlite3 call hands the GIL away and must win it back from a busy event loop,
    which on a shared core takes up to a switch interval: BEGIN, INSERT and COMMIT
    are three such trips, one autocommit INSERT is one.
    """
    kind = batch[0].kind
    if kind == "insert":
        if any(w.kind != "insert" or w.args[1] is not None for w in batch):
            return None
        rows: list[tuple[Any, ...]] = [timer_row(t) for w in batch for t in w.args[0]]
        head, width = INSERT, COLUMN_COUNT
    elif kind == "attempts":
        if any(w.kind != "attempts" for w in batch):
            return None
        rows = outcome_rows([outcome for w in batch for outcome in w.args[0]])
        head, width = INSERT_OUTCOMES, OUTCOME_WIDTH
    else:
        return None
    return (head, width, rows) if 0 < len(rows) <= _ROWS_PER_STATEMENT else None


def timer_row(timer: Timer) -> tuple[Any, ...]:
    if timer.updated_at:  # a Timer is already its row, fields in column order
        return timer
    return (
        timer.id,
        timer.url,
        timer.fire_at,
        timer.created_at,
        timer.status.value,
        timer.next_at,
        timer.attempts,
        timer.updated_at or timer.created_at,
        timer.fired_at,
        timer.last_status_code,
        timer.last_error,
    )


def state_row(timer: Timer) -> tuple[Any, ...]:
    return (
        timer.status.value,
        timer.next_at,
        timer.attempts,
        timer.updated_at,
        timer.fired_at,
        timer.last_status_code,
        timer.last_error,
    )


def outcome_rows(outcomes: list[tuple[Timer, Attempt]]) -> list[tuple[Any, ...]]:
    return [
        (
            t.id,
            t.url,
            t.fire_at,
            *state_row(t),
            a.attempt,
            a.started_at,
            a.duration_ms,
            a.outcome.value,
        )
        for t, a in outcomes
    ]


def import_records(
    conn: sqlite3.Connection, records: Sequence[tuple[Timer, Sequence[Attempt]]]
) -> int:
    """Insert the new timers of `records` and their histories; return how many."""
    ids = [timer.id for timer, _ in records]
    existing: set[str] = set()
    for start in range(0, len(ids), _ROWS_PER_STATEMENT):
        chunk = ids[start : start + _ROWS_PER_STATEMENT]
        marks = ", ".join("?" for _ in chunk)
        existing.update(
            r[0] for r in conn.execute(f"SELECT id FROM timers WHERE id IN ({marks})", chunk)
        )
    fresh: dict[str, tuple[Timer, Sequence[Attempt]]] = {}
    for timer, history in records:
        if timer.id not in existing:
            fresh.setdefault(timer.id, (timer, history))
    insert_rows(conn, INSERT, COLUMN_COUNT, [timer_row(timer) for timer, _ in fresh.values()])
    history_rows = [
        (tid, seq, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.outcome.value)
        for tid, (_, history) in fresh.items()
        for seq, a in enumerate(history, start=1)
    ]
    insert_rows(conn, _INSERT_HISTORY, 8, history_rows)
    # the next outcome takes the seq after the imported ones (see OUTCOME_STEPS)
    conn.executemany(
        "UPDATE timers SET history_seq = ? WHERE id = ?",
        [(len(history), tid) for tid, (_, history) in fresh.items() if history],
    )
    return len(fresh)


def exact(column: str) -> str:
    """A REAL column as text that round-trips exactly; JSON itself keeps only 15 digits.

    `%!.17g`: the `!` lifts SQLite's 16-digit cap; 17 digits identify any double.
    """
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE printf('%!.17g', {column}) END"


# Multi-row reads come back as ONE row holding a JSON array: Python's sqlite3 releases and
# retakes the GIL around every step, and with the event loop busy each retake waits for it.
TIMER_JSON = (
    f"json_array(id, url, {exact('fire_at')}, {exact('created_at')}, status, "
    f"{exact('next_at')}, attempts, {exact('updated_at')}, {exact('fired_at')}, "
    "last_status_code, last_error) AS j"
)


def list_query(statuses: int, after: bool) -> str:
    """The listing SELECT: per status, one bounded range of `timers_status_fire`, merged.

    Parameters: `(status, [fire_at, id,] limit)` for each status, then the page limit.
    """
    where = "status = ?" + (" AND (fire_at, id) > (?, ?)" if after else "")
    arm = (
        f"SELECT * FROM (SELECT {TIMER_JSON}, fire_at, id FROM timers WHERE {where} "
        "ORDER BY fire_at, id LIMIT ?)"
    )
    return f"SELECT j FROM ({' UNION ALL '.join([arm] * statuses)}) ORDER BY fire_at, id LIMIT ?"


_STATUS = {s.value: s for s in Status}  # a dict lookup: Status(text) goes through EnumType


def timer_from_row(row: tuple[Any, ...]) -> Timer:
    """A row of the timer columns in field order (REALs come back as the same floats)."""
    return Timer._make((*row[:4], _STATUS[row[4]], *row[5:]))


def _opt(value: str | None) -> float | None:
    return None if value is None else float(value)


def timer_from_json(row: list[Any]) -> Timer:
    (tid, url, fire_at, created_at, status, next_at, attempts, updated_at, fired_at, code, err) = (
        row
    )
    return Timer(
        id=tid,
        url=url,
        fire_at=float(fire_at),
        created_at=float(created_at),
        status=_STATUS[status],
        next_at=_opt(next_at),
        attempts=attempts,
        updated_at=float(updated_at),
        fired_at=_opt(fired_at),
        last_status_code=code,
        last_error=err,
    )


@dataclass(slots=True)
class Write:
    """One queued write: its kind, its arguments and the caller waiting for COMMIT."""

    kind: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any] = field(repr=False)
