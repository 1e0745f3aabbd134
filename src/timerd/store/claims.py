"""Claims: which timers are being delivered or changed right now, so no two do both.

A claim is the store's concept: on SQLite one process owns the database, so claims live in
this process's memory and are taken and checked on the event loop without awaiting in
between. A backend shared by several processes (PostgreSQL) keeps them in its rows, with
leases, behind the same methods.
"""

from __future__ import annotations

from enum import StrEnum


class ClaimKind(StrEnum):
    """Why a timer is claimed."""

    DELIVERY = "delivery"
    """Due, and queued for or on its way to its receiver, until its outcome is recorded."""
    CHANGE = "change"
    """An API call (cancel, fire, reschedule) is changing it."""


class LocalClaims:
    """Claims held in this process's memory: enough when one process owns the store."""

    def __init__(self) -> None:
        self._held: dict[str, ClaimKind] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, timer_id: object) -> bool:
        return timer_id in self._held

    def owner(self, timer_id: str) -> ClaimKind | None:
        """Return why `timer_id` is claimed, or None if it is free."""
        return self._held.get(timer_id)

    def take(self, timer_id: str, kind: ClaimKind) -> None:
        """Claim `timer_id` (or change why it is claimed); callers check `owner` first."""
        self._held[timer_id] = kind

    def release(self, timer_id: str) -> None:
        """Free `timer_id`; releasing a free id is harmless."""
        self._held.pop(timer_id, None)
