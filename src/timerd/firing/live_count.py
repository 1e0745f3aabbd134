"""The approximate count of live (pending or retrying) timers behind `max_pending`.

Counting rows on every create would cost a query per request, so the service keeps the
count in memory: creates add, deliveries that end a timer, cancels and manual re-fires of
failed timers adjust it, and one `count_by_status` shortly after boot sets the base. The
count is approximate: until that first count lands it only knows the timers changed since
boot (so it lets creates through), and changes that race the boot count may be counted
twice. It never drifts beyond that, and the limit is a guard rail, not an exact quota.
"""

from __future__ import annotations

from timerd.errors import TooManyTimers


class LiveCount:
    """An in-memory count of live timers checked against a limit (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counted = 0
        self._delta = 0
        self._delta_at_count = 0

    @property
    def value(self) -> int:
        """Return the estimated number of live timers."""
        return self._counted + self._delta - self._delta_at_count

    def check(self, adding: int) -> None:
        """Raise TooManyTimers (429) if `adding` more timers would pass the limit."""
        if self.limit and self.value + adding > self.limit:
            raise TooManyTimers(
                f"timerd holds about {self.value} pending timers and max_pending is "
                f"{self.limit}; wait for some to fire, or cancel some"
            )

    def add(self, count: int) -> None:
        """Record `count` more (or, negative, fewer) live timers."""
        self._delta += count

    def mark_count_start(self) -> int:
        """Note the changes seen so far, just before the store is counted."""
        return self._delta

    def set_counted(self, counted: int, delta_at_start: int) -> None:
        """Adopt the store's count, taken after `mark_count_start` returned `delta_at_start`."""
        self._counted = counted
        self._delta_at_count = delta_at_start
