"""The catch-up rate limit: timers that fell due while timerd was down go out at a bounded pace."""

from __future__ import annotations

import time


class TokenBucket:
    """A rate limit on a monotonic clock: `rate` tokens a second, at most `rate` banked."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self._last = time.monotonic()

    def available(self) -> int:
        """Refill, then return the whole tokens available."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self._last) * self.rate)
        self._last = now
        return int(self.tokens)

    def take(self, count: int) -> None:
        """Spend `count` tokens."""
        self.tokens -= count

    def wait_s(self) -> float:
        """Return how long until one whole token is available."""
        return max(0.0, (1 - self.tokens) / self.rate)
