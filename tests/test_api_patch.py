"""PATCH /timers/<id>: reschedule and/or re-aim a live timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.api_helpers import (
    FAR_S,
    Client,
    assert_invalid,
    assert_problem,
    closed_port_url,
    create,
    get_timer,
    wait_attempts,
    wait_status,
)
from tests.conftest import Hit, Receiver
from timerd.api.app_keys import SERVICE

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"


async def patch(client: Client, timer_id: str, body: Any) -> Any:
    return await client.patch(f"/timers/{timer_id}", json=body)


@pytest.mark.parametrize(
    ("body", "delay_s"),
    [({"hours": 2}, 7200), ({"minutes": 5, "seconds": 1.5}, 301.5), ({"seconds": 10}, 10)],
)
async def test_patch_durations_count_from_now(
    api: Client, body: dict[str, Any], delay_s: float
) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    before = time.time()
    resp = await patch(api, timer_id, body)
    after = time.time()
    assert resp.status == 200
    timer = await resp.json()
    assert timer["id"] == timer_id
    assert timer["status"] == "pending"
    assert timer["attempts"] == 0
    assert timer["url"] == URL
    assert before + delay_s - 0.01 <= timer["fire_at"] <= after + delay_s + 0.01
    stored = await get_timer(api, timer_id)
    assert stored["fire_at"] == timer["fire_at"]


@pytest.mark.parametrize("as_text", [False, True])
async def test_patch_fire_at(api: Client, as_text: bool) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    at = float(int(time.time()) + 2 * FAR_S)
    value: Any = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if as_text else at
    resp = await patch(api, timer_id, {"fire_at": value})
    assert resp.status == 200
    assert (await resp.json())["fire_at"] == at
    assert (await get_timer(api, timer_id))["fire_at"] == at


async def test_patch_url_only_keeps_the_due_time(api: Client) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    before = await get_timer(api, timer_id)
    resp = await patch(api, timer_id, {"url": "https://b.example/new?k=v"})
    assert resp.status == 200
    after = await get_timer(api, timer_id)
    assert after["url"] == "https://b.example/new?k=v"
    assert after["fire_at"] == before["fire_at"]
    assert after["status"] == "pending"


async def test_patch_url_and_time_together(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    resp = await patch(api, timer_id, {"url": receiver.url + "/moved", "seconds": 0.05})
    assert resp.status == 200
    (hit,) = await receiver.wait_for(1)
    assert hit.path == f"/hook/moved/{timer_id}"
    await wait_status(api, timer_id, "fired")


async def test_patch_to_now_fires(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=FAR_S, url=receiver.url)
    assert (await patch(api, timer_id, {"seconds": 0})).status == 200
    await receiver.wait_for(1)
    await wait_status(api, timer_id, "fired")


async def test_patch_moves_a_timer_later(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0.15, url=receiver.url)
    marker = await create(api, seconds=0.3, url=receiver.url)
    assert (await patch(api, timer_id, {"seconds": 0.45})).status == 200
    await receiver.wait_for(2)
    assert receiver.ids() == [marker, timer_id]


@pytest.mark.parametrize(
    "body",
    [{}, {"unknown": 1}, {"name": "x", "status": "pending"}],
    ids=["empty", "unknown-only", "unpatchable"],
)
async def test_patch_without_a_change_is_422(api: Client, body: dict[str, Any]) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    problem = await assert_problem(await patch(api, timer_id, body), 422)
    assert problem["errors"]


async def test_patch_with_a_typo_is_422_naming_it_and_changes_nothing(api: Client) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    before = await get_timer(api, timer_id)
    # a typo beside a good field must not apply the good one alone
    problem = await assert_invalid(await patch(api, timer_id, {"secs": 30, "url": URL}), "secs")
    assert problem["errors"][0]["message"].endswith("did you mean seconds?")
    after = await get_timer(api, timer_id)
    assert (after["fire_at"], after["updated_at"]) == (before["fire_at"], before["updated_at"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": None}, "url"),
        ({"url": ""}, "url"),
        ({"seconds": -1}, "seconds"),
        ({"hours": True}, "hours"),
        ({"minutes": 0.5}, "minutes"),
        ({"seconds": None}, "seconds"),
        ({"fire_at": "2099-01-01T00:00:00"}, "fire_at"),
        ({"fire_at": 1, "seconds": 0}, "fire_at"),
        ({"fire_at": None}, "fire_at"),
    ],
    ids=repr,
)
async def test_patch_breaking_a_rule_is_422(api: Client, body: dict[str, Any], field: str) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    before = await get_timer(api, timer_id)
    await assert_invalid(await patch(api, timer_id, body), field)
    after = await get_timer(api, timer_id)
    for key in ("fire_at", "url", "status", "attempts", "updated_at"):
        assert after[key] == before[key]


async def test_patch_beyond_the_maximum_is_422(make_api: MakeApi) -> None:
    client = await make_api(max_delay_s=100)
    timer_id = await create(client, seconds=50, url=URL)
    problem = await assert_problem(await patch(client, timer_id, {"seconds": 101}), 422)
    assert problem["errors"]
    await assert_invalid(await patch(client, timer_id, {"fire_at": time.time() + 500}), "fire_at")
    assert (await patch(client, timer_id, {"seconds": 99})).status == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_patch_needs_json(api: Client, content_type: str | None) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = await api.patch(f"/timers/{timer_id}", data=b'{"seconds": 5}', headers=headers)
    await assert_problem(resp, 415)


@pytest.mark.parametrize("raw", ["[]", "null", "5", "{"])
async def test_patch_body_not_an_object_is_400(api: Client, raw: str) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    resp = await api.patch(
        f"/timers/{timer_id}", data=raw, headers={"Content-Type": "application/json"}
    )
    await assert_problem(resp, 400)


async def test_patch_over_the_body_cap_is_413(make_api: MakeApi) -> None:
    client = await make_api(max_body_bytes=1024)
    timer_id = await create(client, seconds=FAR_S, url=URL)
    await assert_problem(await patch(client, timer_id, {"seconds": 1, "pad": "x" * 4000}), 413)


async def test_patch_unknown_is_404(api: Client) -> None:
    await assert_problem(await patch(api, "AAAAAAAAAAAAAAAAAAAAAA", {"seconds": 1}), 404)


async def test_patch_fired_is_409(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0, url=receiver.url)
    await wait_status(api, timer_id, "fired")
    await assert_problem(await patch(api, timer_id, {"seconds": 5}), 409)
    await assert_problem(await patch(api, timer_id, {"url": URL}), 409)


async def test_patch_cancelled_is_409(api: Client) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    assert (await api.delete(f"/timers/{timer_id}")).status == 200
    await assert_problem(await patch(api, timer_id, {"seconds": 5}), 409)
    assert (await get_timer(api, timer_id))["status"] == "cancelled"


async def test_patch_failed_is_409(make_api: MakeApi) -> None:
    client = await make_api(max_attempts=1)
    timer_id = await create(client, seconds=0, url=closed_port_url())
    await wait_status(client, timer_id, "failed")
    await assert_problem(await patch(client, timer_id, {"seconds": 5}), 409)
    assert (await get_timer(client, timer_id))["status"] == "failed"


async def test_patch_retrying_resets_attempts_and_keeps_history(
    make_api: MakeApi, receiver: Receiver
) -> None:
    client = await make_api(max_attempts=5, backoff_base_s=30, backoff_max_s=30)

    async def fail(hit: Hit) -> web.StreamResponse:
        return web.Response(status=503)

    receiver.respond = fail
    timer_id = await create(client, seconds=0, url=receiver.url)
    retrying = await wait_status(client, timer_id, "retrying")
    assert retrying["attempts"] == 1
    receiver.respond = None
    resp = await patch(client, timer_id, {"seconds": 0.05})
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "pending"
    assert body["attempts"] == 0
    await receiver.wait_for(2)
    fired = await wait_status(client, timer_id, "fired")
    assert fired["attempts"] == 1
    assert receiver.hits[1].headers["Timerd-Attempt"] == "1"
    history = await wait_attempts(client, timer_id, 2)
    assert [a["outcome"] for a in history] == ["retry", "delivered"]


async def test_patch_url_only_of_a_retrying_timer(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_attempts=5, backoff_base_s=0.4, backoff_max_s=0.4)
    timer_id = await create(client, seconds=0, url=closed_port_url())
    await wait_status(client, timer_id, "retrying")
    resp = await patch(client, timer_id, {"url": receiver.url})
    assert resp.status == 200
    assert (await resp.json())["status"] == "pending"
    (hit,) = await receiver.wait_for(1)
    assert hit.path == f"/hook/{timer_id}"
    await wait_status(client, timer_id, "fired")


@pytest.mark.parametrize("margin_s", [0.003, 0.01, 0.03])
async def test_reschedule_just_before_the_old_time_fires_once_at_the_new(
    api: Client, receiver: Receiver, margin_s: float
) -> None:
    service = api.server.app[SERVICE]
    real_reschedule = service.reschedule
    seen_at: list[float] = []

    async def timed_reschedule(*args: Any) -> Any:
        seen_at.append(time.time())
        return await real_reschedule(*args)

    old_at = time.time() + 0.25
    timer_id = await create(api, fire_at=old_at, url=receiver.url)
    await asyncio.sleep(max(0.0, old_at - margin_s - time.time()))
    new_at = old_at + 0.25
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(service, "reschedule", timed_reschedule)
        resp = await patch(api, timer_id, {"fire_at": new_at})
    (hit,) = await receiver.wait_for(1, timeout_s=10)
    if seen_at[0] < old_at:
        # the service saw the PATCH before the old due time: the new time must win
        assert resp.status == 200, await resp.text()
    if resp.status == 200:
        assert hit.arrived_at >= new_at - 0.005, hit.arrived_at - new_at
        assert float(hit.headers["Timerd-Fire-At"]) == pytest.approx(new_at, abs=0.001)
    else:  # too late on a busy machine: it was already being delivered at the old time
        await assert_problem(resp, 409)
        assert hit.arrived_at < new_at
    await wait_status(api, timer_id, "fired")
    # no second delivery: nothing more arrives for a while past both due times
    with pytest.raises(TimeoutError):
        await receiver.wait_for(2, timeout_s=max(0.1, new_at + 0.2 - time.time()))
    assert receiver.ids() == [timer_id]


async def test_reschedule_earlier_fires_once_at_the_new_time(
    api: Client, receiver: Receiver
) -> None:
    timer_id = await create(api, seconds=0.6, url=receiver.url)
    new_at = time.time() + 0.05
    assert (await patch(api, timer_id, {"fire_at": new_at})).status == 200
    (hit,) = await receiver.wait_for(1)
    assert hit.arrived_at >= new_at - 0.005
    assert hit.arrived_at < new_at + 0.5  # before the old time
    with pytest.raises(TimeoutError):
        await receiver.wait_for(2, timeout_s=0.7)  # past the old due time
