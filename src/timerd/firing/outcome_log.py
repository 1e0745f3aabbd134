"""Delivery outcomes on their way to the database, committed in batches.

A delivery frees its slot the moment its HTTP attempt ends; its outcome waits here for the
next commit, and the timer stays claimed until then, so it cannot be sent again meanwhile.
Holding the slot through the commit capped one host at `max_per_host` divided by the commit
time (about 3,000 deliveries a second in the catch-up benchmark), and a write per outcome
paid a future and a wake-up each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from timerd.models import Attempt, Timer

log = logging.getLogger(__name__)

OutcomeEntry = tuple[Timer, Attempt]
"""A timer's state after an attempt, and the attempt's history entry."""

BATCH_MAX = 250
"""Most outcomes in one write: a commit stays short, so a create never waits long behind it."""


class OutcomeLog:
    """Collects outcomes and commits them in order, one batch at a time."""

    def __init__(
        self,
        record: Callable[[list[OutcomeEntry]], Awaitable[None]],
        settle: Callable[[list[OutcomeEntry], bool], None],
        batch_max: int = BATCH_MAX,
    ) -> None:
        """`record` commits a batch (retrying as it sees fit; raising gives up on it);
        `settle(batch, recorded)` runs after each batch either way."""
        self._record = record
        self._settle = settle
        self._batch_max = batch_max
        self._waiting: list[OutcomeEntry] = []
        self._committing = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Outcomes not committed yet."""
        return len(self._waiting) + self._committing

    def start(self) -> None:
        """Start committing."""
        self._task = asyncio.create_task(self._run(), name="timerd-outcomes")

    def add(self, after: Timer, attempt: Attempt) -> None:
        """Queue one outcome for the next commit."""
        self._waiting.append((after, attempt))
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued outcome is committed; False if `timeout_s` ran out."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> list[OutcomeEntry]:
        """Stop committing; return the outcomes that were never committed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lost, self._waiting = self._waiting, []
        return lost

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._waiting[: self._batch_max]
            del self._waiting[: self._batch_max]
            self._committing = len(batch)
            recorded = False
            try:
                await self._record(batch)
                recorded = True
            except asyncio.CancelledError:
                self._waiting[:0] = batch  # stop() reports them as never committed
                raise
            except Exception:
                log.exception("%d delivery outcomes could not be recorded", len(batch))
            finally:
                self._committing = 0
            self._settle(batch, recorded)
