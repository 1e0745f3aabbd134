"""Claims: which timers are being delivered or changed right now, so no two do both.

A claim is the store's concept: on SQLite one process owns the database, so claims live in
this process's memory and are taken and checked on the event loop without awaiting in
between. A backend shared by several processes (PostgreSQL) keeps them in its rows, with
leases, behind the same methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from timerd.cursor import Cursor
from timerd.models import LIVE_STATUSES, Timer


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


SAME_INSTANT_S = 1e-6
"""Heap keys and stored times are the same instant within this (they pass through text)."""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """What `Store.claim_due` decided for a batch of due heap entries."""

    claimed: list[Timer]
    """Claimed for delivery by this process: send each once, then record its outcome."""
    moved: list[Cursor] = field(default_factory=list)
    """`(next_at, id)` of timers whose row moved since they were paged in: the row decides."""
    held: list[Cursor] = field(default_factory=list)
    """`(when, id)` of timers another node holds (or was writing): look again then."""
    send_by: float = float("inf")
    """`time.monotonic()` after which an attempt not yet started must not start: by then
    the claim's lease may have passed to another node (claim again instead)."""


def check_due(due: Sequence[Cursor], rows: Mapping[str, Timer], claims: LocalClaims) -> ClaimResult:
    """Claim, in this process, the due entries whose rows still say they are due.

    Enough when one process owns the store: no other process can deliver them. Runs
    without awaiting, so no change can claim a timer between the check and the claim.
    """
    claimed: list[Timer] = []
    moved: list[Cursor] = []
    for at, tid in due:
        timer = rows.get(tid)
        if tid in claims or timer is None or timer.status not in LIVE_STATUSES:
            continue
        if timer.next_at is None:
            continue
        if abs(timer.next_at - at) > SAME_INSTANT_S:
            moved.append((timer.next_at, tid))
            continue
        claims.take(tid, ClaimKind.DELIVERY)
        claimed.append(timer)
    return ClaimResult(claimed, moved)
