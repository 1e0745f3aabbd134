"""Export and import of timers as JSON Lines, one timer a line, ids and states kept."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from timerd.errors import TimerdError, ValidationFailed
from timerd.locking import DatabaseLock
from timerd.models import LIVE_STATUSES, Status, Timer, is_plausible_id
from timerd.store import SqliteStore

_IMPORT_CHUNK = 10_000


class ImportError_(TimerdError):
    """A line of an import file is not a timer; nothing was imported."""

    title = "Import failed"
    type_slug = "import"


async def iter_store(store: SqliteStore, status: Status | None) -> AsyncIterator[Timer]:
    """Yield every timer of `status` (None: all) by due time, a page at a time."""
    after = None
    while True:
        page = await store.list_timers(status, 1000, after)
        for timer in page:
            yield timer
        if len(page) < 1000:
            return
        after = (page[-1].fire_at, page[-1].id)


def export_line(timer: dict[str, Any]) -> str:
    """Return one JSON line for a timer (its API form, without the moment-bound time_left)."""
    data = {k: v for k, v in timer.items() if k != "time_left"}
    return json.dumps(data, separators=(",", ":"))


def parse_lines(lines: Iterable[str]) -> list[Timer]:
    """Validate every line first; raise ImportError_ naming the first bad line."""
    timers: list[Timer] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            timers.append(_parse_timer(json.loads(line)))
        except (ValueError, KeyError, TypeError, ValidationFailed) as exc:
            reason = str(exc) if not isinstance(exc, KeyError) else f"missing field {exc}"
            raise ImportError_(f"line {number}: {reason}") from None
    return timers


def _parse_timer(data: Any) -> Timer:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    timer = Timer.from_json(data)
    if not is_plausible_id(timer.id):
        raise ValueError(f"bad id {timer.id!r}")
    if not timer.url.startswith(("http://", "https://")):
        raise ValueError("url must be an http or https URL")
    for name in ("fire_at", "created_at", "updated_at"):
        if not math.isfinite(getattr(timer, name)):
            raise ValueError(f"{name} must be a finite number")
    if timer.status in LIVE_STATUSES and timer.next_at is None:
        timer = timer.evolve(next_at=timer.fire_at)
    if timer.status not in LIVE_STATUSES and timer.next_at is not None:
        timer = timer.evolve(next_at=None)
    return timer


async def import_timers(db: Path, timers: list[Timer]) -> tuple[int, int]:
    """Insert `timers` into `db` (created if missing), skipping existing ids.

    Holds the daemon lock meanwhile, so it refuses a database a daemon holds.
    Returns `(imported, skipped)`.
    """
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = DatabaseLock(db)
    lock.acquire()
    try:
        store = SqliteStore(db)
        await store.open()
        try:
            imported = 0
            for start in range(0, len(timers), _IMPORT_CHUNK):
                imported += await store.insert_missing(timers[start : start + _IMPORT_CHUNK])
        finally:
            await store.close()
    finally:
        lock.release()
    return imported, len(timers) - imported
