"""`fire_at`: an absolute due instant as epoch seconds or RFC 3339 with an offset."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.api_helpers import (
    Client,
    all_timers,
    assert_invalid,
    create,
    get_timer,
    wait_status,
)
from tests.conftest import Receiver

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"


async def test_epoch_number_is_kept_exactly(api: Client) -> None:
    fire_at = time.time() + 3600.125
    timer_id = await create(api, fire_at=fire_at, url=URL)
    timer = await get_timer(api, timer_id)
    assert timer["fire_at"] == pytest.approx(fire_at, abs=1e-6)
    assert timer["status"] == "pending"


async def test_epoch_integer_is_accepted(api: Client) -> None:
    fire_at = int(time.time()) + 3600
    timer_id = await create(api, fire_at=fire_at, url=URL)
    assert (await get_timer(api, timer_id))["fire_at"] == fire_at


@pytest.mark.parametrize(
    ("offset", "zulu"),
    [
        (timedelta(0), True),
        (timedelta(0), False),
        (timedelta(hours=2), False),
        (timedelta(hours=-5, minutes=-30), False),
        (timedelta(minutes=45), False),
    ],
)
async def test_rfc3339_with_offset(api: Client, offset: timedelta, zulu: bool) -> None:
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    text = instant.astimezone(timezone(offset)).isoformat()
    if zulu:
        text = text.replace("+00:00", "Z")
    timer_id = await create(api, fire_at=text, url=URL)
    assert (await get_timer(api, timer_id))["fire_at"] == pytest.approx(instant.timestamp())


@pytest.mark.parametrize("fmt", ["%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S.%f+00:00"])
async def test_rfc3339_with_fraction(api: Client, fmt: str) -> None:
    instant = datetime.now(UTC) + timedelta(days=1)
    timer_id = await create(api, fire_at=instant.strftime(fmt), url=URL)
    assert (await get_timer(api, timer_id))["fire_at"] == pytest.approx(instant.timestamp())


@pytest.mark.parametrize("fmt", ["%Y-%m-%dt%H:%M:%SZ", "%Y-%m-%dT%H:%M:%Sz", "%Y-%m-%dt%H:%M:%Sz"])
async def test_rfc3339_lowercase_t_and_z(api: Client, fmt: str) -> None:
    """RFC 3339 section 5.6: "T" and "Z" may alternatively be lower case."""
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    resp = await api.post("/timers", json={"fire_at": instant.strftime(fmt), "url": URL})
    assert resp.status == 201, await resp.text()
    timer = await get_timer(api, (await resp.json())["id"])
    assert timer["fire_at"] == instant.timestamp()


@pytest.mark.parametrize(
    "value",
    [
        "2099-11-23T10:00:00",
        "2099-11-23T10:00",
        "2099-11-23",
        "2099-11-23 10:00:00",
        "10:00:00Z",
        "tomorrow",
        "",
        "2099-13-01T00:00:00Z",
        "2099-11-23T25:00:00Z",
        "2099-11-23T10:00:00+25:00",
        True,
        False,
        None,
        [],
        {},
    ],
    ids=repr,
)
async def test_bad_fire_at_is_422(api: Client, value: Any) -> None:
    await assert_invalid(await api.post("/timers", json={"fire_at": value, "url": URL}), "fire_at")
    assert await all_timers(api) == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_non_finite_fire_at_is_422(api: Client, literal: str) -> None:
    raw = f'{{"fire_at": {literal}, "url": "{URL}"}}'
    resp = await api.post("/timers", data=raw, headers={"Content-Type": "application/json"})
    await assert_invalid(resp, "fire_at")


@pytest.mark.parametrize(
    "durations",
    [{"hours": 0}, {"minutes": 0}, {"seconds": 0}, {"seconds": 5}, {"hours": 1, "minutes": 1}],
)
async def test_fire_at_with_durations_is_422(api: Client, durations: dict[str, int]) -> None:
    body = {"fire_at": time.time() + 60, "url": URL, **durations}
    problem = await api.post("/timers", json=body)
    fields = {e["field"] for e in (await problem.json())["errors"]}
    assert problem.status == 422
    assert "fire_at" in fields or fields & set(durations)
    assert await all_timers(api) == []


@pytest.mark.parametrize("as_text", [False, True])
async def test_past_instant_fires_at_once(api: Client, receiver: Receiver, as_text: bool) -> None:
    past = time.time() - 3600
    value: Any = datetime.fromtimestamp(past, UTC).isoformat() if as_text else past
    before = time.time()
    timer_id = await create(api, fire_at=value, url=receiver.url)
    (hit,) = await receiver.wait_for(1, timeout_s=5)
    assert hit.path == f"/hook/{timer_id}"
    assert hit.arrived_at - before < 2.0
    timer = await wait_status(api, timer_id, "fired")
    assert timer["fire_at"] == pytest.approx(past, abs=1e-3)


async def test_epoch_zero_fires_at_once(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, fire_at=0, url=receiver.url)
    await receiver.wait_for(1, timeout_s=5)
    await wait_status(api, timer_id, "fired")


@pytest.mark.parametrize("as_text", [False, True])
async def test_fire_at_beyond_the_maximum_is_422(make_api: MakeApi, as_text: bool) -> None:
    client = await make_api(max_delay_s=100)

    def value(at: float) -> Any:
        return datetime.fromtimestamp(at, UTC).isoformat() if as_text else at

    resp = await client.post("/timers", json={"fire_at": value(time.time() + 200), "url": URL})
    await assert_invalid(resp, "fire_at")
    resp = await client.post("/timers", json={"fire_at": value(time.time() + 50), "url": URL})
    assert resp.status == 201


async def test_fire_at_far_future_is_422_with_default_maximum(api: Client) -> None:
    await assert_invalid(
        await api.post("/timers", json={"fire_at": "9999-12-31T23:59:59Z", "url": URL}), "fire_at"
    )


async def test_fire_at_and_bad_url_are_both_reported(api: Client) -> None:
    resp = await api.post("/timers", json={"fire_at": "soon", "url": "ftp://x"})
    await assert_invalid(resp, "fire_at", "url")
