"""Pure parts of delivery: backoff, Retry-After, host keys."""

from __future__ import annotations

import pytest

from timerd.delivery.deliverer import backoff_s, host_key, parse_retry_after


def test_backoff_doubles_is_capped_and_jittered() -> None:
    assert backoff_s(1, 1.0, 60, rand=lambda: 0.0) == 0.5
    assert backoff_s(1, 1.0, 60, rand=lambda: 1.0) == 1.0
    assert backoff_s(4, 1.0, 60, rand=lambda: 1.0) == 8.0
    assert backoff_s(30, 1.0, 60, rand=lambda: 1.0) == 60.0
    assert backoff_s(10_000, 1.0, 60, rand=lambda: 0.5) == 45.0  # no overflow


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=2_000_000_000.0) == expected


def test_retry_after_http_date_in_future() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 30) == 30.0


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://a.example/x", "a.example:80"),
        ("https://a.example/x", "a.example:443"),
        ("http://127.0.0.1:8080/h?q", "127.0.0.1:8080"),
    ],
)
def test_host_key(url: str, key: str) -> None:
    assert host_key(url) == key
