"""Delivery outcomes through the API: retries, failure, history, redirects, Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from tests.api_helpers import (
    FAR_S,
    Client,
    assert_problem,
    closed_port_url,
    create,
    get_timer,
    wait_attempts,
    wait_status,
)
from tests.conftest import Hit, Receiver

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"


def answers(*statuses: int, headers: dict[str, str] | None = None) -> Callable[..., Awaitable]:
    """Return a `respond` coroutine that answers `statuses` in turn, then 200."""
    queue = list(statuses)

    async def respond(hit: Hit) -> web.StreamResponse:
        status = queue.pop(0) if queue else 200
        return web.Response(status=status, headers=headers if status != 200 else None)

    return respond


async def test_attempts_of_a_new_timer_are_empty(api: Client) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    resp = await api.get(f"/timers/{timer_id}/attempts")
    assert resp.status == 200
    assert await resp.json() == {"attempts": []}


async def test_attempts_of_unknown_timer_is_404(api: Client) -> None:
    await assert_problem(await api.get("/timers/AAAAAAAAAAAAAAAAAAAAAA/attempts"), 404)


async def test_fails_twice_then_succeeds(api: Client, receiver: Receiver) -> None:
    receiver.respond = answers(500, 500)
    timer_id = await create(api, seconds=0, url=receiver.url)
    hits = await receiver.wait_for(3)
    timer = await wait_status(api, timer_id, "fired")
    assert timer["attempts"] == 3
    assert timer["time_left"] == 0
    assert [h.headers["Timerd-Attempt"] for h in hits] == ["1", "2", "3"]
    # the due instant is the same on every retry
    assert len({h.headers["Timerd-Fire-At"] for h in hits}) == 1
    assert all(h.path == f"/hook/{timer_id}" for h in hits)
    history = await wait_attempts(api, timer_id, 3)
    assert [a["attempt"] for a in history] == [1, 2, 3]
    assert [a["outcome"] for a in history] == ["retry", "retry", "delivered"]
    assert [a["status_code"] for a in history] == [500, 500, 200]
    assert history[0]["error"]
    assert history[1]["error"]
    assert history[2]["error"] is None
    starts = [a["started_at"] for a in history]
    assert starts == sorted(starts)
    assert all(a["duration_ms"] >= 0 for a in history)
    assert set(history[0]) >= {"attempt", "started_at", "duration_ms", "status_code", "error"}


async def test_exhausted_attempts_fail_then_fire_by_hand(
    make_api: MakeApi, receiver: Receiver
) -> None:
    client = await make_api(max_attempts=3)
    receiver.respond = answers(500, 502, 503)
    timer_id = await create(client, seconds=0, url=receiver.url)
    failed = await wait_status(client, timer_id, "failed")
    assert failed["attempts"] == 3
    assert failed["last_error"]
    assert "503" in failed["last_error"]
    assert failed["time_left"] == 0
    assert len(receiver.hits) == 3
    history = await wait_attempts(client, timer_id, 3)
    assert [a["outcome"] for a in history] == ["retry", "retry", "failed"]
    assert [a["status_code"] for a in history] == [500, 502, 503]
    # a person fires it again: it delivers now
    resp = await client.post(f"/timers/{timer_id}/fire")
    assert resp.status == 202
    assert (await resp.json())["status"] == "pending"
    hits = await receiver.wait_for(4)
    assert hits[3].headers["Timerd-Attempt"] == "1"
    fired = await wait_status(client, timer_id, "fired")
    assert fired["attempts"] == 1
    history = await wait_attempts(client, timer_id, 4)
    assert [a["outcome"] for a in history] == ["retry", "retry", "failed", "delivered"]


async def test_history_keeps_the_last_n(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_attempts=5, attempts_kept=2)
    receiver.respond = answers(500, 500, 500, 500, 500)
    timer_id = await create(client, seconds=0, url=receiver.url)
    await wait_status(client, timer_id, "failed")
    resp = await client.get(f"/timers/{timer_id}/attempts")
    history = (await resp.json())["attempts"]
    assert [a["attempt"] for a in history] == [4, 5]
    assert [a["outcome"] for a in history] == ["retry", "failed"]


async def test_connection_refused_retries_then_fails(make_api: MakeApi) -> None:
    client = await make_api(max_attempts=3)
    timer_id = await create(client, seconds=0, url=closed_port_url())
    failed = await wait_status(client, timer_id, "failed")
    assert failed["attempts"] == 3
    assert failed["last_error"]
    assert failed["last_status_code"] is None
    history = await wait_attempts(client, timer_id, 3)
    assert [a["outcome"] for a in history] == ["retry", "retry", "failed"]
    assert all(a["status_code"] is None for a in history)
    assert all(a["error"] for a in history)


async def test_connection_refused_is_retrying_in_between(make_api: MakeApi) -> None:
    client = await make_api(max_attempts=3, backoff_base_s=5, backoff_max_s=5)
    timer_id = await create(client, seconds=0, url=closed_port_url())
    timer = await wait_status(client, timer_id, "retrying")
    assert timer["attempts"] == 1
    assert timer["last_error"]
    history = await wait_attempts(client, timer_id, 1)
    assert history[0]["outcome"] == "retry"
    # backoff with equal jitter: at least half the base step after the attempt
    assert timer["next_attempt_at"] >= history[0]["started_at"] + 2.5 - 0.01


async def test_timeout_is_retried_then_failed(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_attempts=2, attempt_timeout_s=0.2)
    release = asyncio.Event()

    async def hang(hit: Hit) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    receiver.respond = hang
    try:
        timer_id = await create(client, seconds=0, url=receiver.url)
        failed = await wait_status(client, timer_id, "failed")
    finally:
        release.set()
    assert failed["attempts"] == 2
    assert "time" in failed["last_error"].lower()
    history = await wait_attempts(client, timer_id, 2)
    assert [a["outcome"] for a in history] == ["retry", "failed"]
    assert all(a["status_code"] is None for a in history)
    assert all(150 <= a["duration_ms"] < 5000 for a in history)
    assert len(receiver.hits) == 2


async def test_timeout_then_success(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(attempt_timeout_s=0.2)
    release = asyncio.Event()
    calls = 0

    async def slow_once(hit: Hit) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()
        return web.Response(status=204)

    receiver.respond = slow_once
    try:
        timer_id = await create(client, seconds=0, url=receiver.url)
        fired = await wait_status(client, timer_id, "fired")
    finally:
        release.set()
    assert fired["attempts"] == 2


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed(make_api: MakeApi, receiver: Receiver, status: int) -> None:
    client = await make_api(max_attempts=2)

    async def redirect(hit: Hit) -> web.StreamResponse:
        if hit.path.startswith("/elsewhere"):
            return web.Response(status=200)
        return web.Response(status=status, headers={"Location": "/elsewhere"})

    receiver.respond = redirect
    timer_id = await create(client, seconds=0, url=receiver.url)
    failed = await wait_status(client, timer_id, "failed")
    assert [h.path for h in receiver.hits] == [f"/hook/{timer_id}"] * 2
    assert failed["last_status_code"] == status
    history = await wait_attempts(client, timer_id, 2)
    assert [a["status_code"] for a in history] == [status, status]
    assert [a["outcome"] for a in history] == ["retry", "failed"]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_any_2xx_is_delivered(api: Client, receiver: Receiver, status: int) -> None:
    receiver.respond = answers(status)
    timer_id = await create(api, seconds=0, url=receiver.url)
    timer = await wait_status(api, timer_id, "fired", "retrying", "failed")
    assert timer["status"] == "fired"
    assert timer["attempts"] == 1
    assert len(receiver.hits) == 1


@pytest.mark.parametrize("status", [400, 404, 410, 429, 500, 503])
async def test_non_2xx_is_retried(make_api: MakeApi, receiver: Receiver, status: int) -> None:
    client = await make_api(max_attempts=2)
    receiver.respond = answers(status)
    timer_id = await create(client, seconds=0, url=receiver.url)
    await receiver.wait_for(2)
    timer = await wait_status(client, timer_id, "fired")
    assert timer["attempts"] == 2


async def test_retry_after_is_honoured(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_attempts=3)
    receiver.respond = answers(429, headers={"Retry-After": "1"})
    timer_id = await create(client, seconds=0, url=receiver.url)
    (first,) = await receiver.wait_for(1)
    retrying = await wait_status(client, timer_id, "retrying", "fired")
    assert retrying["status"] == "retrying"
    history = await wait_attempts(client, timer_id, 1)
    assert history[0]["status_code"] == 429
    # backoff alone would retry within 0.2 s; Retry-After asks for 1 s
    assert retrying["next_attempt_at"] >= history[0]["started_at"] + 1.0 - 0.01
    hits = await receiver.wait_for(2)
    assert hits[1].arrived_at - first.arrived_at >= 0.95
    await wait_status(client, timer_id, "fired")


async def test_long_retry_after_sets_next_attempt(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_attempts=3)
    receiver.respond = answers(503, headers={"Retry-After": "120"})
    before = time.time()
    timer_id = await create(client, seconds=0, url=receiver.url)
    await receiver.wait_for(1)
    retrying = await wait_status(client, timer_id, "retrying")
    assert retrying["next_attempt_at"] >= before + 120 - 0.01
    assert retrying["time_left"] == 0
    # it can still be cancelled while it waits
    assert (await client.delete(f"/timers/{timer_id}")).status == 200


async def test_retry_after_is_capped(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_attempts=3, retry_after_max_s=0.3)
    receiver.respond = answers(503, headers={"Retry-After": "3600"})
    timer_id = await create(client, seconds=0, url=receiver.url)
    await receiver.wait_for(2)
    await wait_status(client, timer_id, "fired")
    timer = await get_timer(client, timer_id)
    assert timer["attempts"] == 2
