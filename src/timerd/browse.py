"""What the pages read: pages of timers, searches, failure groups, the newest and the next.

Every read is bounded: listings follow an index; a search by URL substring or an order by
last change, which no index serves, looks at a fixed number of rows per request and says so
(`SCAN_ROWS`), so a large table costs the same as a small one. URLs leave here redacted.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from timerd.cursor import Cursor
from timerd.models import LIVE_STATUSES, Status, Timer, redact_url
from timerd.store import Store

SCAN_ROWS = 2000
"""Rows one URL search or one last-change page looks at, at most."""
GROUP_SAMPLE = 50
"""Timers listed under each failure group (the group's count covers them all)."""


class Sort(StrEnum):
    """Orders a listing can take."""

    DUE = "due"
    DUE_DESC = "due_desc"
    CHANGED = "changed"


class Lister(Protocol):
    """The part of the service a page listing needs."""

    async def list_timers(
        self, statuses: Collection[Status] | None, limit: int, after: Cursor | None
    ) -> list[Timer]: ...


def public_json(timer: Timer, now: float) -> dict[str, Any]:
    """Return a timer's API JSON with any credentials in its URL redacted."""
    body = timer.to_json(now)
    body["url"] = redact_url(timer.url)
    return body


def host_of(url: str) -> str:
    """Return `host[:port]` of a URL, without credentials (`?` if it has none)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return host if port is None else f"{host}:{port}"


def statuses_of(name: str) -> list[Status] | None:
    """Return the statuses a filter names (`all`: None), or raise ValueError."""
    if name == "all":
        return None
    if name == "live":
        return sorted(LIVE_STATUSES)
    return [Status(name)]


def _key(timer: Timer, sort: Sort) -> Cursor:
    return (timer.updated_at, timer.id) if sort is Sort.CHANGED else (timer.fire_at, timer.id)


async def _index_page(
    store: Store, statuses: list[Status] | None, limit: int, after: Cursor | None, desc: bool
) -> list[Timer]:
    """One page along `timers(status, fire_at, id)`, either way."""
    if desc:
        return await store.list_timers_desc(statuses, limit, after)
    return await store.list_timers(statuses, limit, after)


@dataclass(slots=True)
class Page:
    """One page of a listing: its timers, where the next one starts, and what was read."""

    timers: list[Timer]
    next_after: Cursor | None
    scanned: int | None = None
    """Rows looked at, when the filter or order is not served by an index."""
    complete: bool = True
    """False when the rows looked at were cut at `SCAN_ROWS`."""
    notes: list[str] = field(default_factory=list)


async def browse(
    store: Store,
    statuses: list[Status] | None,
    sort: Sort,
    url_part: str,
    limit: int,
    after: Cursor | None,
) -> Page:
    """Return one page of timers of `statuses` in `sort` order, their URL holding `url_part`.

    The substring is matched, case-insensitively, against the redacted URL: a search must
    not reveal credentials one character at a time.
    """
    needle = url_part.lower()

    def matches(timer: Timer) -> bool:
        return not needle or needle in redact_url(timer.url).lower()

    if sort is Sort.CHANGED:
        window = await _index_page(store, statuses, SCAN_ROWS, None, True)
        found = sorted(filter(matches, window), key=lambda t: (t.updated_at, t.id), reverse=True)
        if after is not None:
            found = [t for t in found if (t.updated_at, t.id) < after]
        page = found[:limit]
        more = len(found) > limit
        return Page(
            page,
            _key(page[-1], sort) if more else None,
            scanned=len(window),
            complete=len(window) < SCAN_ROWS,
        )
    desc = sort is Sort.DUE_DESC
    if not needle:
        rows = await _index_page(store, statuses, limit + 1, after, desc)
        more = len(rows) > limit
        return Page(rows[:limit], _key(rows[limit - 1], sort) if more else None)
    rows = await _index_page(store, statuses, SCAN_ROWS, after, desc)
    found = [t for t in rows if matches(t)]
    if len(found) > limit:
        return Page(found[:limit], _key(found[limit - 1], sort), scanned=len(rows))
    cut = len(rows) == SCAN_ROWS
    return Page(found, _key(rows[-1], sort) if cut else None, scanned=len(rows), complete=not cut)


async def by_id_prefix(store: Store, prefix: str, limit: int, after: str | None) -> Page:
    """Return one page of the timers whose id starts with `prefix`, in id order."""
    rows = await store.list_by_id_prefix(prefix, limit + 1, after)
    more = len(rows) > limit
    return Page(rows[:limit], (0.0, rows[limit - 1].id) if more else None)


@dataclass(slots=True)
class FailureGroup:
    """Failed timers that share a host or an error."""

    key: str
    timers: list[Timer] = field(default_factory=list)

    def to_json(self, now: float) -> dict[str, Any]:
        """Return the group with its count and the first `GROUP_SAMPLE` timers."""
        return {
            "key": self.key,
            "count": len(self.timers),
            "latest_fire_at": max(t.fire_at for t in self.timers),
            "timers": [public_json(t, now) for t in self.timers[:GROUP_SAMPLE]],
        }


class GroupBy(StrEnum):
    """What failures are grouped by."""

    HOST = "host"
    ERROR = "error"


async def failure_groups(store: Store, by: GroupBy) -> tuple[list[FailureGroup], int]:
    """Group the `SCAN_ROWS` most recently due failed timers; return the groups (largest
    first) and how many timers were looked at."""
    failed = await store.list_timers_desc({Status.FAILED}, SCAN_ROWS, None)
    groups: dict[str, FailureGroup] = {}
    for timer in failed:
        key = host_of(timer.url) if by is GroupBy.HOST else (timer.last_error or "no error kept")
        groups.setdefault(key, FailureGroup(key)).timers.append(timer)
    ordered = sorted(groups.values(), key=lambda g: (-len(g.timers), g.key))
    return ordered, len(failed)


async def next_timers(service: Lister, count: int) -> list[Timer]:
    """Return the `count` live timers due soonest (pending or retrying), soonest first."""
    live = await service.list_timers(LIVE_STATUSES, count, None)
    live.sort(key=lambda t: (t.next_at if t.next_at is not None else t.fire_at, t.id))
    return live[:count]


async def newest_timers(store: Store, status: Status, count: int) -> list[Timer]:
    """Return up to `count` timers of `status` with the latest due times, newest first."""
    return await store.list_timers_desc({status}, count, None)


def ids_in(groups: Sequence[FailureGroup], key: str) -> list[str]:
    """Return the ids of every timer in the group named `key` (none if there is no such)."""
    for group in groups:
        if group.key == key:
            return [t.id for t in group.timers]
    return []
