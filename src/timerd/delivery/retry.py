"""The retry rule: what one attempt's result makes of its timer.

A pure function of the timer, the result, the time and the policy, so every branch is
tested without a receiver, a clock or a database.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from timerd.delivery.deliverer import DeliveryPolicy, DeliveryResult, backoff_s
from timerd.models import Attempt, Outcome, Status, Timer


@dataclass(frozen=True, slots=True)
class Decision:
    """A timer's state after one attempt, and that attempt's history entry."""

    after: Timer
    attempt: Attempt

    @property
    def outcome(self) -> Outcome:
        """Return what the attempt came to: delivered, retry or failed."""
        return self.attempt.outcome


def decide(
    timer: Timer,
    attempt_no: int,
    result: DeliveryResult,
    now: float,
    policy: DeliveryPolicy,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Return the timer's next state: fired, retrying after a backoff, or failed.

    A receiver's `Retry-After` can only lengthen the backoff; a result the outbound policy
    blocked, or the last allowed attempt, fails the timer at once.
    """
    common = {"attempts": attempt_no, "updated_at": now, "last_status_code": result.status_code}
    if result.delivered:
        outcome = Outcome.DELIVERED
        after = timer.evolve(
            status=Status.FIRED, next_at=None, fired_at=now, last_error=None, **common
        )
    elif result.permanent or attempt_no >= policy.max_attempts:
        outcome = Outcome.FAILED
        after = timer.evolve(status=Status.FAILED, next_at=None, last_error=result.error, **common)
    else:
        outcome = Outcome.RETRY
        delay = backoff_s(attempt_no, policy.backoff_base_s, policy.backoff_max_s, rand)
        if result.retry_after_s is not None:
            delay = max(delay, result.retry_after_s)
        after = timer.evolve(
            status=Status.RETRYING, next_at=now + delay, last_error=result.error, **common
        )
    attempt = Attempt(
        timer_id=timer.id,
        attempt=attempt_no,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error,
        outcome=outcome,
    )
    return Decision(after, attempt)
