"""The `Store` contract. Its docstrings are the contract every backend must honour.

Claims (which timer is being delivered or changed) belong to the store: SQLite keeps them
in this process (`LocalClaims`); a backend shared by several processes keeps them in the
database behind the same methods.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from timerd.cursor import Cursor
from timerd.models import Attempt, Status, Timer
from timerd.store.claims import ClaimResult, LocalClaims

__all__ = ["ClaimResult", "IdempotencyRecord", "Store"]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first answer to a request that carried an `Idempotency-Key`."""

    route: str
    key: str
    body_hash: str
    status: int
    response: str
    created_at: float


class Store(Protocol):
    """Durable timers, their delivery history and idempotency records."""

    claims: LocalClaims
    """Which timers are being delivered or changed now; see timerd.store.claims."""

    async def open(self) -> None:
        """Open (creating and migrating if needed) the database.

        Raises DatabaseError for a file that is not a timerd database or is newer than
        this version; never overwrites such a file.
        """
        ...

    async def close(self) -> None:
        """Commit what is queued and close; calling it twice is harmless."""
        ...

    async def insert_timers(
        self, timers: Sequence[Timer], idempotency: IdempotencyRecord | None = None
    ) -> None:
        """Insert `timers` (and `idempotency`) in one transaction; return once committed.

        All or nothing. A stored record for the same `(route, key)` is replaced: callers
        only write one after finding none, or an expired one. On a database shared by
        nodes, a record another node wrote within the idempotency retention is never
        replaced: then nothing is written and Conflict is raised (the client's retry gets
        that node's answer). Raises Conflict if an id exists, and
        Unavailable (503) if the write cannot be committed now (queue full, disk full,
        locked): then nothing was written.
        """
        ...

    async def insert_missing(self, timers: Sequence[Timer]) -> int:
        """Insert the timers whose ids do not exist yet, in one transaction; return how many."""
        ...

    async def update_timer(self, timer: Timer, expect: frozenset[Status]) -> bool:
        """Replace the stored row by `timer` if its stored status is in `expect`.

        Returns whether it did; returns once committed. Raises Unavailable like inserts.
        """
        ...

    async def record_attempts(self, outcomes: Sequence[tuple[Timer, Attempt]]) -> None:
        """Store delivery outcomes: each timer's new state and one history entry, at once.

        Only the newest `attempts_kept` entries per timer are kept. Each applies only while
        its stored timer is live (pending or retrying), so a late outcome cannot undo a
        cancel. Returns once committed; the API's own writes go first when both wait.
        """
        ...

    async def get_timer(self, timer_id: str) -> Timer | None:
        """Return the timer with that id, or None."""
        ...

    async def get_timers(self, timer_ids: Sequence[str]) -> list[Timer]:
        """Return the timers with those ids that exist, in no particular order."""
        ...

    async def list_timers(
        self, statuses: Collection[Status] | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return up to `limit` timers in `statuses` (None: every status) ordered by
        `(fire_at, id)`, strictly after `after`.

        Served by an index: never scans the table.
        """
        ...

    async def due_keys(self, after: Cursor | None, until: float, limit: int) -> list[Cursor]:
        """Return `(next_at, id)` of live timers due by `until`, after `after`, in order.

        On a database shared by nodes: only those in this node's buckets (`watch_ownership`).
        """
        ...

    async def attempts(self, timer_id: str) -> list[Attempt]:
        """Return the kept delivery attempts of a timer, oldest first."""
        ...

    async def count_by_status(self) -> dict[Status, int]:
        """Return how many timers are in each status."""
        ...

    async def get_idempotency(self, route: str, key: str) -> IdempotencyRecord | None:
        """Return the stored first answer for `(route, key)`, or None."""
        ...

    async def purge_idempotency(self, before: float) -> int:
        """Forget idempotency records created before `before`; return how many."""
        ...

    async def count_due(self, until: float) -> int:
        """Return how many live timers are due by `until` (at boot: how many are overdue)."""
        ...

    # reads for the status page (appended; a PostgreSQL backend implements them too) -------

    async def list_timers_desc(
        self, statuses: Collection[Status] | None, limit: int, before: Cursor | None
    ) -> list[Timer]:
        """Return up to `limit` timers ordered by `(fire_at, id)` descending, strictly before
        `before` (None: from the newest-due).

        `statuses` None means every status. Served by an index: reads at most `limit` rows per
        status, never scans the table.
        """
        ...

    async def list_by_id_prefix(self, prefix: str, limit: int, after: str | None) -> list[Timer]:
        """Return up to `limit` timers whose id starts with `prefix`, ordered by id, strictly
        after the id `after` (None: from the first).

        Every status. Served by the primary key: reads at most `limit` rows.
        """
        ...

    # several processes on one database (appended; issue 15) -------------------------------

    shared: bool
    """Whether other processes deliver from this database too (PostgreSQL nodes).

    Then a timer this process creates or changes, due within the window, goes in its heap
    even past the loaded horizon: the node that owns its bucket may have paged that time
    range before the timer existed.
    """

    async def claim_due(self, due: Sequence[Cursor]) -> ClaimResult:
        """Claim for delivery by this process the timers of `due` (`(next_at, id)` popped
        from the heap) whose rows are live and still due at that key; return them.

        A timer claimed in this process (by a change or a delivery) is left out. One whose
        row moved is returned in `moved` with its new next_at; one that another process
        holds under an unexpired lease, or is writing now, in `held` with when to look
        again. A claim on a shared database is a lease in the database's clock: it lasts
        until its outcome is recorded, or expires, and then another node may take the
        timer over; an attempt must start by `send_by` or not at all. Claiming twice across
        processes is impossible: one statement checks and claims. SQLite: no extra
        statement beyond reading the rows.
        """
        ...

    async def release_claims(self, timer_ids: Sequence[str]) -> None:
        """Give up this process's delivery claims on `timer_ids` (queued, never sent).

        Another node may claim them at once. Raises Unavailable if the database cannot
        take it now (the leases then expire by themselves).
        """
        ...

    async def change_timer(self, before: Timer, after: Timer) -> bool:
        """Replace the stored row by `after` if it is still `before` (compare-and-set).

        What an API change (cancel, fire, reschedule) commits, after reading `before`.
        Returns whether it applied; returns once committed; raises Unavailable like inserts.
        On a database shared by nodes the row must still have `before`'s status and
        `updated_at` (every write of a timer's state sets it), and no other node may hold
        it under an unexpired claim; SQLite: `update_timer` from `before`'s status, since
        the process's own claims already keep changes and deliveries apart.
        """
        ...

    def watch_ownership(self, changed: Callable[[], None]) -> None:
        """Call `changed` each time the timers `due_keys` pages in may have changed.

        On PostgreSQL `due_keys` pages only the buckets this node owns (rendezvous hashing
        over the live nodes), and a node joining or leaving, or a lost connection, moves
        them: the caller reloads its window from scratch. SQLite never calls it.
        """
        ...
