"""POST /timers/batch: ids in request order, all or nothing, bounded size."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.api_helpers import (
    FAR_S,
    Client,
    all_timers,
    assert_invalid,
    assert_problem,
    get_timer,
    wait_status,
)
from tests.conftest import Receiver

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"


async def test_batch_answers_ids_in_request_order(api: Client) -> None:
    now = time.time()
    items: list[dict[str, Any]] = [
        {"seconds": FAR_S, "url": f"{URL}/0"},
        {"fire_at": now + 2 * FAR_S, "url": f"{URL}/1"},
        {"hours": 1, "minutes": 30, "url": f"{URL}/2"},
        {"fire_at": "2030-01-01T00:00:00+01:00", "url": f"{URL}/3"},
        {"seconds": FAR_S, "url": f"{URL}/4"},
    ]
    resp = await api.post("/timers/batch", json={"timers": items})
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"ids"}
    ids = body["ids"]
    assert len(ids) == len(set(ids)) == 5
    for index, timer_id in enumerate(ids):
        timer = await get_timer(api, timer_id)
        assert timer["url"] == f"{URL}/{index}"
        assert timer["status"] == "pending"
    assert (await get_timer(api, ids[1]))["fire_at"] == pytest.approx(now + 2 * FAR_S)


async def test_batch_timers_are_delivered(api: Client, receiver: Receiver) -> None:
    items = [{"seconds": 0.05 * i, "url": receiver.url} for i in range(5)]
    resp = await api.post("/timers/batch", json={"timers": items})
    ids = (await resp.json())["ids"]
    await receiver.wait_for(5)
    for timer_id in ids:
        await wait_status(api, timer_id, "fired")
    assert sorted(receiver.ids()) == sorted(ids)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"seconds": 1, "url": "ftp://x"}, "timers[3].url"),
        ({"seconds": 1}, "timers[3].url"),
        ({"seconds": -1, "url": URL}, "timers[3].seconds"),
        ({"hours": 0.5, "url": URL}, "timers[3].hours"),
        ({"minutes": True, "url": URL}, "timers[3].minutes"),
        ({"fire_at": "2099-01-01T00:00:00", "url": URL}, "timers[3].fire_at"),
        ({"fire_at": 1, "seconds": 0, "url": URL}, "timers[3].fire_at"),
        ({"seconds": 10**9, "url": URL}, "timers[3].seconds"),
        ("not an object", "timers[3]"),
        (None, "timers[3]"),
        ([], "timers[3]"),
    ],
    ids=repr,
)
async def test_one_bad_item_fails_the_whole_batch(api: Client, bad: Any, field: str) -> None:
    good = {"seconds": FAR_S, "url": URL}
    items = [good, good, good, bad, good]
    resp = await api.post("/timers/batch", json={"timers": items})
    body = await assert_problem(resp, 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert await all_timers(api) == []


async def test_every_bad_item_is_reported(api: Client) -> None:
    items = [
        {"seconds": FAR_S, "url": URL},
        {"seconds": FAR_S, "url": "relative"},
        {"seconds": FAR_S, "url": URL},
        {"seconds": -1, "minutes": "x", "url": URL},
    ]
    resp = await api.post("/timers/batch", json={"timers": items})
    await assert_invalid(resp, "timers[1].url", "timers[3].seconds", "timers[3].minutes")
    assert await all_timers(api) == []


async def test_unknown_fields_of_items_and_body_are_named(api: Client) -> None:
    items = [{"seconds": FAR_S, "url": URL}] * 3 + [{"secs": 30, "url": URL}, {"url": URL}]
    resp = await api.post("/timers/batch", json={"timers": items})
    problem = await assert_invalid(resp, "timers[3].secs", "timers[3]", "timers[4]")
    hint = next(e["message"] for e in problem["errors"] if e["field"] == "timers[3].secs")
    assert "did you mean seconds?" in hint
    resp = await api.post("/timers/batch", json={"timers": items[:1], "timer": []})
    await assert_invalid(resp, "timer")
    assert await all_timers(api) == []


@pytest.mark.parametrize(
    "body",
    [{"timers": []}, {}, {"timers": None}, {"timers": {"a": 1}}, {"timers": "x"}],
    ids=repr,
)
async def test_empty_or_missing_list_is_422(api: Client, body: dict[str, Any]) -> None:
    await assert_invalid(await api.post("/timers/batch", json=body), "timers")


async def test_batch_size_is_bounded(make_api: MakeApi) -> None:
    client = await make_api(batch_max=3)
    item = {"seconds": FAR_S, "url": URL}
    resp = await client.post("/timers/batch", json={"timers": [item] * 3})
    assert resp.status == 201
    resp = await client.post("/timers/batch", json={"timers": [item] * 4})
    await assert_invalid(resp, "timers")
    assert len(await all_timers(client)) == 3


async def test_default_batch_maximum_is_1000(api: Client) -> None:
    item = {"seconds": FAR_S, "url": URL}
    resp = await api.post("/timers/batch", json={"timers": [item] * 1001})
    await assert_invalid(resp, "timers")
    resp = await api.post("/timers/batch", json={"timers": [item] * 1000})
    assert resp.status == 201
    assert len((await resp.json())["ids"]) == 1000


@pytest.mark.parametrize("raw", ["[]", "null", '"x"', "{", ""])
async def test_batch_body_that_is_not_an_object_is_400(api: Client, raw: str) -> None:
    resp = await api.post("/timers/batch", data=raw, headers={"Content-Type": "application/json"})
    await assert_problem(resp, 400)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_batch_needs_json_content_type(api: Client, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    raw = b'{"timers": [{"seconds": 1, "url": "https://a.example"}]}'
    await assert_problem(await api.post("/timers/batch", data=raw, headers=headers), 415)
    assert await all_timers(api) == []


async def test_batch_body_over_the_cap_is_413(make_api: MakeApi) -> None:
    client = await make_api(max_body_bytes=1024)
    items = [{"seconds": FAR_S, "url": URL}] * 100
    await assert_problem(await client.post("/timers/batch", json={"timers": items}), 413)
    assert await all_timers(client) == []
