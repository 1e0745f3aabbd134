"""The retry rule as a pure function: each branch without a receiver, clock or database."""

from __future__ import annotations

import pytest

from timerd.delivery.deliverer import DeliveryPolicy, DeliveryResult
from timerd.delivery.retry import decide
from timerd.models import Outcome, Status, Timer, new_id

NOW = 1_800_000_000.0
POLICY = DeliveryPolicy(
    attempt_timeout_s=5,
    max_in_flight=8,
    max_per_host=8,
    max_attempts=3,
    backoff_base_s=1.0,
    backoff_max_s=60.0,
    retry_after_max_s=300,
)


def timer() -> Timer:
    return Timer(id=new_id(), url="http://r.example/h", fire_at=NOW - 1, created_at=NOW - 9)


def result(status: int | None, **kw: object) -> DeliveryResult:
    delivered = status is not None and 200 <= status < 300
    error = None if delivered else (f"HTTP {status}" if status else "timed out")
    return DeliveryResult(delivered, status, error, NOW, 12.5, **kw)  # type: ignore[arg-type]


def test_a_2xx_fires_the_timer() -> None:
    d = decide(timer(), 1, result(204), NOW, POLICY)
    assert d.outcome is Outcome.DELIVERED
    assert d.after.status is Status.FIRED
    assert d.after.fired_at == NOW
    assert d.after.next_at is None
    assert (d.attempt.attempt, d.attempt.status_code, d.attempt.error) == (1, 204, None)


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 1.0), (1.0, 2.0)])
def test_a_failure_retries_after_an_equal_jitter_backoff(rand: float, expected: float) -> None:
    d = decide(timer(), 2, result(500), NOW, POLICY, rand=lambda: rand)  # step 2 s
    assert d.outcome is Outcome.RETRY
    assert d.after.status is Status.RETRYING
    assert d.after.next_at == NOW + expected
    assert d.after.last_error == "HTTP 500"
    assert d.after.attempts == 2


def test_retry_after_only_lengthens_the_backoff() -> None:
    longer = decide(timer(), 1, result(503, retry_after_s=30.0), NOW, POLICY, rand=lambda: 1.0)
    assert longer.after.next_at == NOW + 30.0
    shorter = decide(timer(), 1, result(503, retry_after_s=0.1), NOW, POLICY, rand=lambda: 1.0)
    assert shorter.after.next_at == NOW + 1.0


def test_the_last_attempt_fails_the_timer() -> None:
    d = decide(timer(), POLICY.max_attempts, result(None), NOW, POLICY)
    assert d.outcome is Outcome.FAILED
    assert d.after.status is Status.FAILED
    assert d.after.next_at is None
    assert d.after.last_error == "timed out"


def test_a_blocked_destination_fails_at_once() -> None:
    d = decide(timer(), 1, result(None, permanent=True), NOW, POLICY)
    assert d.outcome is Outcome.FAILED
    assert d.after.attempts == 1
