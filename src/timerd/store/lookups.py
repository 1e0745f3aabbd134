"""Point lookups that arrive in the same turn of the event loop, answered by one query.

The read-side twin of group commit: every GET asks for one id, and under load many ask in
the same turn; one `fetch_many` for all of them costs less than one query each. Both
backends use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from timerd.models import Timer

FetchMany = Callable[[Sequence[str]], Awaitable[list[Timer]]]


class CoalescedLookups:
    """Collects lookups by id and answers each batch with one `fetch_many` call."""

    def __init__(self, fetch_many: FetchMany) -> None:
        self._fetch_many = fetch_many
        self._waiting: dict[str, list[asyncio.Future[Timer | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, timer_id: str) -> Timer | None:
        """Return the timer with that id, or None; a failed fetch raises in every caller."""
        future: asyncio.Future[Timer | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(timer_id, []).append(future)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    found = {t.id: t for t in await self._fetch_many(list(batch))}
                except Exception as exc:  # hand the failure to every waiting caller
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for timer_id, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(timer_id))
        finally:
            self._task = None
