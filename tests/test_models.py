"""Pure tests of timerd.models: webhook URL joining, time_left rounding, ids."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timerd.models import (
    Status,
    Timer,
    is_plausible_id,
    new_id,
    new_ids,
    redact_url,
    time_left_s,
    webhook_url,
)

TID = "AbC-_123xyz"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/hook", f"https://a.example/hook/{TID}"),
        ("https://a.example/hook/", f"https://a.example/hook/{TID}"),
        ("https://a.example/hook?k=v", f"https://a.example/hook/{TID}?k=v"),
        ("https://a.example/hook/?k=v", f"https://a.example/hook/{TID}?k=v"),
        ("https://a.example/hook?k=v&x=1", f"https://a.example/hook/{TID}?k=v&x=1"),
        ("https://a.example/hook?next=/a/b", f"https://a.example/hook/{TID}?next=/a/b"),
        ("https://a.example", f"https://a.example/{TID}"),
        ("https://a.example/", f"https://a.example/{TID}"),
        ("https://a.example?k=v", f"https://a.example/{TID}?k=v"),
        ("http://127.0.0.1:8080/a/b/c", f"http://127.0.0.1:8080/a/b/c/{TID}"),
        ("http://[::1]:9000/hook", f"http://[::1]:9000/hook/{TID}"),
        ("https://u:p@a.example/hook", f"https://u:p@a.example/hook/{TID}"),
        ("https://a.example/a%20b", f"https://a.example/a%20b/{TID}"),
        ("https://a.example/hook?", f"https://a.example/hook/{TID}"),
        ("https://a.example/hook#frag", f"https://a.example/hook/{TID}"),
        ("https://a.example/hook?k=v#frag", f"https://a.example/hook/{TID}?k=v"),
    ],
)
def test_webhook_url_appends_the_id_as_a_segment(url: str, expected: str) -> None:
    assert webhook_url(url, TID) == expected


@pytest.mark.parametrize(
    ("fire_at", "now", "expected"),
    [
        (100.0, 0.0, 100),
        (100.0, 0.5, 100),
        (100.0, 99.999, 1),
        (100.0, 99.0, 1),
        (100.0, 98.9, 2),
        (100.0, 100.0, 0),
        (100.0, 150.0, 0),
        (100.25, 0.0, 101),
        (1e9 + 0.001, 1e9, 1),
    ],
)
def test_time_left_is_rounded_up_while_pending(fire_at: float, now: float, expected: int) -> None:
    left = time_left_s(fire_at, Status.PENDING, now)
    assert left == expected
    assert isinstance(left, int)


@pytest.mark.parametrize("status", [Status.RETRYING, Status.FIRED, Status.FAILED, Status.CANCELLED])
def test_time_left_is_zero_unless_pending(status: Status) -> None:
    assert time_left_s(1000.0, status, 0.0) == 0


def test_new_ids_are_url_safe_unguessable_and_plausible() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for timer_id in ids:
        assert is_plausible_id(timer_id)
        assert len(timer_id) >= 22
        assert timer_id != "batch"
        assert all(c.isalnum() or c in "-_" for c in timer_id)


def test_new_ids_sort_by_creation_time_and_never_look_like_an_option() -> None:
    """Ids made later sort after earlier ones, so inserts append to the primary key."""
    first = new_id()
    deadline = time.monotonic() + 1.0
    while new_id()[:7] == first[:7]:  # the next millisecond
        assert time.monotonic() < deadline
    later = [new_id() for _ in range(100)]
    assert all(first < timer_id for timer_id in later)
    assert first[0].isalpha()
    assert len({t[7:] for t in later}) == 100  # the random part differs within a millisecond


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("abc", True),
        ("A-_z9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("a.b", False),
        ("a/b", False),
        ("a b", False),
        ("été", False),
        ("a\n", False),
    ],
)
def test_is_plausible_id(value: str, ok: bool) -> None:
    assert is_plausible_id(value) is ok


def test_redact_url_hides_credentials() -> None:
    assert redact_url("https://u:p@a.example/x?k=v") == "https://***@a.example/x?k=v"
    assert redact_url("https://a.example/x") == "https://a.example/x"


def test_timer_json_round_trip() -> None:
    timer = Timer(
        id=TID,
        url="https://a.example/hook",
        fire_at=200.5,
        created_at=100.0,
        next_at=200.5,
        updated_at=100.0,
    )
    body = timer.to_json(now=150.0)
    assert body["time_left"] == 51
    assert body["status"] == "pending"
    assert body["next_attempt_at"] == 200.5
    assert Timer.from_json(body) == timer


def test_ids_made_in_bulk_look_like_single_ones() -> None:
    ids = new_ids(500)
    assert len(set(ids)) == 500
    assert all(len(t) == len(new_id()) and is_plausible_id(t) for t in ids)
    assert {t[:7] for t in ids} <= {new_id()[:7], ids[0][:7]}  # one creation instant


def test_ids_stay_whole_and_distinct_across_random_pool_refills() -> None:
    """The random tails come from a pool of 4096; batches and singles straddle refills."""
    ids = new_ids(5000) + [new_id() for _ in range(5000)] + new_ids(3000)
    assert len(set(ids)) == len(ids)
    assert {len(t) for t in ids} == {23}
    assert len({t[7:] for t in ids}) == len(ids)


_times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)


@given(
    url=st.text(max_size=40),
    error=st.none() | st.text(max_size=40),
    status=st.sampled_from(list(Status)),
    at=_times,
    created=_times,
    optional=st.none() | _times,
    attempts=st.integers(0, 1000),
    code=st.none() | st.integers(100, 599),
    now=_times,
)
def test_hand_encoded_json_equals_the_dict_form(
    url: str,
    error: str | None,
    status: Status,
    at: float,
    created: float,
    optional: float | None,
    attempts: int,
    code: int | None,
    now: float,
) -> None:
    timer = Timer(
        new_id(), url, at, created, status, optional, attempts, created, optional, code, error
    )
    encoded = timer.to_json_bytes(now)
    assert json.loads(encoded) == timer.to_json(now)
    assert encoded.isascii()  # as json.dumps would write it
