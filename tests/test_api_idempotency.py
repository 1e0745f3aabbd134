"""Idempotency-Key on POST /timers and POST /timers/batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.api_helpers import FAR_S, Client, all_timers, assert_problem
from timerd.api.app_keys import SERVICE
from timerd.errors import Unavailable

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"
BODY = {"seconds": FAR_S, "url": URL}
BATCH = {"timers": [BODY, {"minutes": 90, "url": URL}]}
ROUTES = [("/timers", BODY), ("/timers/batch", BATCH)]


async def post(client: Client, path: str, body: Any, key: str | None) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post(path, json=body, headers=headers)


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_repeat_replays_the_first_answer(api: Client, path: str, body: Any) -> None:
    first = await post(api, path, body, "key-1")
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    first_body = await first.json()
    for _ in range(3):
        again = await post(api, path, body, "key-1")
        assert again.status == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await again.json() == first_body
        if path == "/timers":
            assert again.headers["Location"] == first.headers["Location"]
    assert len(await all_timers(api)) == len(body.get("timers", [body]))


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_a_replay_is_byte_for_byte_the_first_answer(
    api: Client, path: str, body: Any
) -> None:
    first = await post(api, path, body, "bytes-1")
    assert first.status == 201
    first_bytes = await first.read()
    again = await post(api, path, body, "bytes-1")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == first_bytes
    assert again.headers["Content-Type"] == first.headers["Content-Type"]


async def test_same_body_means_equal_json(api: Client) -> None:
    first = await post(api, "/timers", {"url": URL, "seconds": FAR_S}, "k")
    raw = json.dumps({"seconds": FAR_S, "url": URL}, indent=4)
    again = await api.post(
        "/timers",
        data=raw,
        headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": "k"},
    )
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert len(await all_timers(api)) == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            '{"url": "https://a.example/hook", "seconds": 3600}',
            '{"seconds":3600,"url":"https:\\/\\/a.example\\/hook"}',
        ),
        (
            '{"url": "https://a.example/hook", "seconds": 3600}',
            '{"url": "\\u0068ttps://a.example/hook", "seconds": 3600}',
        ),
        (
            '{"url": "https://a.example/hook", "seconds": 3600}',
            '{"url": "https://a.example/hook", "seconds": 3600.0}',
        ),
        (
            '{"url": "https://a.example/hook", "seconds": 3600}',
            '{"url": "https://a.example/hook", "seconds": 36e2}',
        ),
    ],
    ids=["escaped-slashes", "unicode-escape", "int-vs-float", "exponent"],
)
async def test_equal_json_is_the_same_body(api: Client, first: str, second: str) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "eq"}
    one = await api.post("/timers", data=first, headers=headers)
    assert one.status == 201
    two = await api.post("/timers", data=second, headers=headers)
    assert two.status == 201, await two.text()
    assert two.headers.get("Idempotent-Replayed") == "true"
    assert await two.json() == await one.json()


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_same_key_with_another_body_is_422(api: Client, path: str, body: Any) -> None:
    assert (await post(api, path, body, "k")).status == 201
    other = {"timers": [BODY]} if path.endswith("batch") else {**BODY, "seconds": FAR_S + 1}
    problem = await assert_problem(await post(api, path, other, "k"), 422)
    assert problem["errors"]
    assert len(await all_timers(api)) == len(body.get("timers", [body]))


async def test_keys_are_scoped_per_route(api: Client) -> None:
    single = await post(api, "/timers", BODY, "shared")
    batch = await post(api, "/timers/batch", BATCH, "shared")
    assert single.status == 201
    assert batch.status == 201
    assert "Idempotent-Replayed" not in batch.headers
    assert len(await all_timers(api)) == 3
    again = await post(api, "/timers/batch", BATCH, "shared")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await batch.json()


async def test_different_keys_create_different_timers(api: Client) -> None:
    one = await (await post(api, "/timers", BODY, "a")).json()
    two = await (await post(api, "/timers", BODY, "b")).json()
    three = await (await post(api, "/timers", BODY, None)).json()
    assert len({one["id"], two["id"], three["id"]}) == 3


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_a_failed_request_is_not_replayed(api: Client, path: str, body: Any) -> None:
    bad = {"timers": [{"url": "x"}]} if path.endswith("batch") else {"url": "x"}
    await assert_problem(await post(api, path, bad, "k"), 422)
    again = await post(api, path, bad, "k")
    await assert_problem(again, 422)
    assert "Idempotent-Replayed" not in again.headers
    good = await post(api, path, body, "k")
    assert good.status == 201
    assert "Idempotent-Replayed" not in good.headers
    replay = await post(api, path, body, "k")
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_a_415_or_400_request_is_not_replayed(api: Client) -> None:
    headers = {"Idempotency-Key": "k", "Content-Type": "text/plain"}
    await assert_problem(await api.post("/timers", data=json.dumps(BODY), headers=headers), 415)
    headers["Content-Type"] = "application/json"
    await assert_problem(await api.post("/timers", data="[]", headers=headers), 400)
    good = await post(api, "/timers", BODY, "k")
    assert good.status == 201
    assert "Idempotent-Replayed" not in good.headers


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_repeat_while_the_first_runs_is_409(api: Client, path: str, body: Any) -> None:
    store = api.server.app[SERVICE].store
    real_insert = store.insert_timers
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow_insert(*args: Any, **kwargs: Any) -> None:
        if not entered.is_set():  # only the first insert waits
            entered.set()
            await release.wait()
        await real_insert(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "insert_timers", slow_insert)
        first = asyncio.create_task(post(api, path, body, "busy"))
        async with asyncio.timeout(10):
            await entered.wait()
        await assert_problem(await post(api, path, body, "busy"), 409)
        # another key is not held up by the busy one
        assert (await post(api, path, body, "other")).status == 201
        release.set()
        resp = await first
        assert resp.status == 201
        first_body = await resp.json()
    replay = await post(api, path, body, "busy")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await replay.json() == first_body
    assert len(await all_timers(api)) == 2 * len(body.get("timers", [body]))


async def test_slot_is_freed_when_the_first_request_fails(api: Client) -> None:
    store = api.server.app[SERVICE].store
    real_insert = store.insert_timers
    calls = 0

    async def failing_once(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Unavailable("disk is full")
        await real_insert(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "insert_timers", failing_once)
        await assert_problem(await post(api, "/timers", BODY, "k"), 503)
        good = await post(api, "/timers", BODY, "k")
    assert good.status == 201
    assert "Idempotent-Replayed" not in good.headers
    assert len(await all_timers(api)) == 1


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "clé", "\u00e9", "a\tb", "日本"],
    ids=["empty", "256-chars", "non-ascii", "latin1", "tab", "cjk"],
)
@pytest.mark.parametrize("path", ["/timers", "/timers/batch"])
async def test_invalid_key_is_rejected(api: Client, key: str, path: str) -> None:
    body = BATCH if path.endswith("batch") else BODY
    raw_key = key.encode("utf-8").decode("latin-1")  # send the UTF-8 bytes as they are
    resp = await post(api, path, body, raw_key)
    assert 400 <= resp.status < 500
    problem = await assert_problem(resp, resp.status)
    if resp.status == 422:
        assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert await all_timers(api) == []


@pytest.mark.parametrize("key", ["x" * 255, "a", "~!@#$%^&*()_+ {}|:<>?", "550e8400-e29b-41d4"])
async def test_valid_keys_are_accepted(api: Client, key: str) -> None:
    assert (await post(api, "/timers", BODY, key)).status == 201
    replay = await post(api, "/timers", BODY, key)
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_keys_are_case_sensitive(api: Client) -> None:
    assert (await post(api, "/timers", BODY, "Key")).status == 201
    resp = await post(api, "/timers", BODY, "key")
    assert resp.status == 201
    assert "Idempotent-Replayed" not in resp.headers


async def test_replay_survives_a_restart(make_api: MakeApi) -> None:
    client = await make_api()
    first = await post(client, "/timers", BODY, "restart")
    first_body = await first.json()
    await client.close()
    client = await make_api()
    again = await post(client, "/timers", BODY, "restart")
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == first_body
    assert len(await all_timers(client)) == 1


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_an_expired_key_starts_afresh(make_api: MakeApi, path: str, body: Any) -> None:
    client = await make_api(idempotency_retention_s=60)
    first = await post(client, path, body, "old")
    assert first.status == 201
    clock = client.server.app[SERVICE].clock
    real_now = clock.now
    with pytest.MonkeyPatch.context() as patch:
        # two minutes later: the key is past its retention but not purged yet
        patch.setattr(clock, "now", lambda: real_now() + 120)
        again, bystander = await asyncio.gather(
            post(client, path, body, "old"), post(client, "/timers", BODY, None)
        )
        # a create committed alongside it is not harmed
        assert bystander.status == 201, await bystander.text()
        assert again.status == 201, await again.text()
        assert "Idempotent-Replayed" not in again.headers
        assert await again.json() != await first.json()
        replay = await post(client, path, body, "old")
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert await replay.json() == await again.json()
