"""Timers as values: status, ids, the webhook URL rule and the `time_left` rounding."""

from __future__ import annotations

import base64
import math
import os
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit


class Status(StrEnum):
    """Where a timer is in its life."""

    PENDING = "pending"
    RETRYING = "retrying"
    FIRED = "fired"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_STATUSES = frozenset({Status.PENDING, Status.RETRYING})
"""Statuses whose timers still wait to be delivered (they have a `next_at`)."""

ID_BYTES = 12
"""96 random bits per id: ids are the only thing between one caller's timer and another's."""

_SORTABLE = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""The base64url alphabet in ASCII order, so that a prefix written in it sorts by value."""

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _RandomText:
    """Random id tails, 16 base64url characters (96 bits) each, made 4096 at a time.

    One `os.urandom` and one encode per 4096 ids instead of per id; an id is then one slice
    of a string, which halved the cost of making one (measurable at ten thousand creates a
    second). The pool never outlives a fork because the daemon never forks.
    """

    WIDTH = ID_BYTES * 4 // 3  # 12 bytes are exactly 16 characters: no padding between tails

    def __init__(self, ids: int) -> None:
        self._ids = ids
        self._text = ""
        self._at = 0

    def one(self) -> str:
        at = self._at
        if at >= len(self._text):
            self._refill()
            at = 0
        self._at = at + self.WIDTH
        return self._text[at : at + self.WIDTH]

    def take(self, count: int) -> list[str]:
        tails: list[str] = []
        width = self.WIDTH
        while len(tails) < count:
            if self._at >= len(self._text):
                self._refill()
            text, at = self._text, self._at
            end = min(len(text), at + (count - len(tails)) * width)
            tails.extend([text[i : i + width] for i in range(at, end, width)])
            self._at = end
        return tails

    def _refill(self) -> None:
        self._text = base64.urlsafe_b64encode(os.urandom(ID_BYTES * self._ids)).decode()
        self._at = 0


_random_tails = _RandomText(4096)


class _TimePrefix:
    """Milliseconds since the epoch as 7 sortable characters, cached for the current ms.

    64**7 ms is 139 years: the first character is a letter from 1972 until 2109 (then the
    prefix wraps, which costs only locality), so an id never looks like a CLI option.
    """

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def now(self) -> str:
        ms = int(time.time() * 1000)
        if ms != self._ms:
            self._ms, self._text = ms, _sortable(ms % 64**7, 7)
        return self._text


def _sortable(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 64)
        chars.append(_SORTABLE[digit])
    return "".join(reversed(chars))


_time_prefix = _TimePrefix()


def new_id() -> str:
    """Return a fresh, unguessable, URL-safe id: 23 characters, never `batch`.

    7 characters of creation time (milliseconds, in an alphabet that sorts like the
    numbers), then 96 random bits. New rows then land at the end of the primary-key
    b-tree instead of on a random page: with fully random ids each insert dirtied its
    own page, and an insert cost 3 to 4 times as much (BENCHMARKS.md, "create").
    """
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """Return `count` fresh ids as `new_id` describes them."""
    prefix = _time_prefix.now()
    if count == 1:  # every single create: no list building around one id
        return [prefix + _random_tails.one()]
    return [prefix + tail for tail in _random_tails.take(count)]


def is_plausible_id(value: str) -> bool:
    """Tell whether `value` could be an id at all, so junk never reaches the database."""
    return _ID_RE.fullmatch(value) is not None


def append_segment(path: str, segment: str) -> str:
    """Append `segment` to a URL path as a new last segment (`/hook` and `/hook/` alike)."""
    return (path if path.endswith("/") else path + "/") + segment


def webhook_url(url: str, timer_id: str) -> str:
    """Append `timer_id` as a new path segment of `url`, keeping any query at the end."""
    parts = urlsplit(url)
    path = append_segment(parts.path, timer_id)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def redact_url(url: str) -> str:
    """Hide `user:pass@` credentials of a URL for logs and listings."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


def time_left_s(fire_at: float, status: Status, now: float) -> int:
    """Whole seconds until due, rounded up while pending; 0 once due or finished."""
    if status is not Status.PENDING:
        return 0
    remaining = fire_at - now
    return math.ceil(remaining) if remaining > 0 else 0


class Timer(NamedTuple):
    """One timer as stored, its fields in the order of the table's columns.

    `fire_at` is the due instant (epoch seconds) the user asked for; `next_at` is when the
    scheduler should next try it (equal to `fire_at` while pending, later while retrying,
    `None` once fired, failed or cancelled). A named tuple, not a frozen dataclass: it is
    built on every create and read, and a frozen dataclass's `__init__` is slower.
    """

    id: str
    url: str
    fire_at: float
    created_at: float
    status: Status = Status.PENDING
    next_at: float | None = None
    attempts: int = 0
    updated_at: float = 0.0
    fired_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None

    def evolve(self, **changes: Any) -> Timer:
        """Return a copy with `changes` applied."""
        return self._replace(**changes)

    def to_json(self, now: float) -> dict[str, Any]:
        """Return the API representation, with `time_left` computed at `now`."""
        return {
            "id": self.id,
            "url": self.url,
            "status": self.status.value,
            "time_left": time_left_s(self.fire_at, self.status, now),
            "fire_at": self.fire_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "next_attempt_at": self.next_at,
            "fired_at": self.fired_at,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
        }

    def to_json_bytes(self, now: float) -> bytes:
        """`to_json(now)` encoded as JSON, by hand: `json.dumps` of that dict was a large part
        of a whole GET; strings still go through json's own escaping."""
        return (
            f'{{"id":{_js(self.id)},"url":{_js(self.url)},"status":"{self.status.value}",'
            f'"time_left":{time_left_s(self.fire_at, self.status, now)},'
            f'"fire_at":{self.fire_at!r},"created_at":{self.created_at!r},'
            f'"updated_at":{self.updated_at!r},"next_attempt_at":{_jf(self.next_at)},'
            f'"fired_at":{_jf(self.fired_at)},"attempts":{self.attempts},'
            f'"last_status_code":{_ji(self.last_status_code)},'
            f'"last_error":{"null" if self.last_error is None else _js(self.last_error)}}}'
        ).encode()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Timer:
        """Rebuild a timer from its API representation (export/import)."""
        return cls(
            id=str(body["id"]),
            url=str(body["url"]),
            fire_at=float(body["fire_at"]),
            created_at=float(body["created_at"]),
            status=Status(body["status"]),
            next_at=_opt_float(body.get("next_attempt_at")),
            attempts=int(body.get("attempts") or 0),
            updated_at=float(body.get("updated_at") or body["created_at"]),
            fired_at=_opt_float(body.get("fired_at")),
            last_status_code=_opt_int(body.get("last_status_code")),
            last_error=body.get("last_error"),
        )


def _js(text: str) -> str:
    return encode_basestring_ascii(text)


def _jf(value: float | None) -> str:
    return "null" if value is None else repr(float(value))


def _ji(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class Outcome(StrEnum):
    """How one delivery attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as kept in a timer's history."""

    timer_id: str
    attempt: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        """Return the API representation (without the timer id)."""
        return {
            "attempt": self.attempt,
            "started_at": self.started_at,
            "duration_ms": round(self.duration_ms, 3),
            "status_code": self.status_code,
            "error": self.error,
            "outcome": self.outcome.value,
        }
