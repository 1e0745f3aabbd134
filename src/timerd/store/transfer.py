"""Export and import of timers as JSON Lines, one timer a line, ids and states kept."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from timerd.config import Settings, is_postgres_url
from timerd.errors import TimerdError, ValidationFailed
from timerd.models import Attempt, Status, Timer
from timerd.store import AnyStore, SqliteStore, make_store
from timerd.store.locking import DatabaseLock
from timerd.store.records import attempt_record, parse_record
from timerd.validation import BodyLimits

_IMPORT_CHUNK = 10_000


class ImportError_(TimerdError):
    """A line of an import file is not a timer; nothing was imported."""

    title = "Import failed"
    type_slug = "import"


async def iter_store(store: AnyStore, status: Status | None) -> AsyncIterator[Timer]:
    """Yield every timer of `status` (None: all) by due time, a page at a time."""
    after = None
    while True:
        page = await store.list_timers(None if status is None else {status}, 1000, after)
        for timer in page:
            yield timer
        if len(page) < 1000:
            return
        after = (page[-1].fire_at, page[-1].id)


def export_line(timer: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """Return one JSON line: a timer's API form (without the moment-bound time_left) and
    its kept delivery history, entries as `GET /timers/<id>/attempts` gives them."""
    data = {k: v for k, v in timer.items() if k != "time_left"}
    data["history"] = history
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


async def export_store(store: AnyStore, status: Status | None, now: float) -> AsyncIterator[str]:
    """Yield the export line of every timer of `status` (None: all), a page at a time."""
    page: list[Timer] = []
    async for timer in iter_store(store, status):
        page.append(timer)
        if len(page) == 1000:
            for line in await _page_lines(store, page, now):
                yield line
            page = []
    for line in await _page_lines(store, page, now):
        yield line


async def _page_lines(store: AnyStore, page: list[Timer], now: float) -> list[str]:
    histories = await store.attempts_of([t.id for t in page]) if page else {}
    return [
        export_line(t.to_json(now), [attempt_record(a) for a in histories.get(t.id, ())])
        for t in page
    ]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


Record = tuple[Timer, list[Attempt]]


def parse_lines(lines: Iterable[str], limits: BodyLimits | None = None) -> list[Record]:
    """Validate every line with the API's rules first; raise ImportError_ at the first bad one."""
    limits = limits or default_import_limits()
    records: list[Record] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(parse_record(json.loads(line, parse_constant=_no_constant), limits))
        except (ValueError, RecursionError, ValidationFailed) as exc:
            reason = str(exc) if isinstance(exc, ValidationFailed) else f"not valid JSON ({exc})"
            raise ImportError_(f"line {number}: {reason}") from None
    return records


def default_import_limits() -> BodyLimits:
    """The body limits of a daemon with default settings (import reads no config)."""
    settings = Settings()
    return BodyLimits(max_delay_s=settings.max_delay_s, max_url_length=settings.max_url_length)


async def import_timers(db: Path | str, timers: list[Record]) -> tuple[int, int]:
    """Insert `timers` and their histories into `db` (created if missing), skipping existing ids.

    A SQLite file: holds the daemon lock meanwhile, so it refuses a database a daemon holds.
    A PostgreSQL URL: nodes may run meanwhile (ids are unique; they fire what comes in).
    Returns `(imported, skipped)`.
    """
    if is_postgres_url(db):
        imported = await _import_into(make_store(db, read_connections=1), timers)
        return imported, len(timers) - imported
    path = Path(db)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = DatabaseLock(path)
    lock.acquire()
    try:
        imported = await _import_into(SqliteStore(path), timers)
    finally:
        lock.release()
    return imported, len(timers) - imported


async def _import_into(store: AnyStore, timers: list[Record]) -> int:
    """Open `store`, insert the new timers chunk by chunk, close it; return how many went in."""
    await store.open()
    try:
        imported = 0
        for start in range(0, len(timers), _IMPORT_CHUNK):
            imported += await store.import_missing(timers[start : start + _IMPORT_CHUNK])
        return imported
    finally:
        await store.close()
