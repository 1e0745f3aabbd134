"""GET, list, cancel and fire of timers; health, metrics, unknown paths and methods."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from yarl import URL as URL_

from tests.api_helpers import (
    FAR_S,
    Client,
    all_timers,
    assert_invalid,
    assert_problem,
    closed_port_url,
    create,
    get_timer,
    wait_status,
)
from tests.conftest import Hit, Receiver
from timerd.api.app_keys import SERVICE

MakeApi = Callable[..., Awaitable[Client]]
URL = "https://a.example/hook"
TIMER_FIELDS = {"id", "time_left", "status", "url", "fire_at", "created_at", "attempts"}
MALFORMED_IDS = ["x" * 65, "bad.id", "a%20b", "%00", "a..b", "a+b", "%C3%A9t%C3%A9", "a%2Fb", "~"]


async def batch(client: Client, items: list[dict[str, Any]]) -> list[str]:
    resp = await client.post("/timers/batch", json={"timers": items})
    assert resp.status == 201, await resp.text()
    ids: list[str] = (await resp.json())["ids"]
    return ids


# -- GET /timers/<id> -------------------------------------------------------------------------


async def test_get_shows_every_field_of_a_pending_timer(api: Client) -> None:
    before = time.time()
    timer_id = await create(api, seconds=100.5, url=URL)
    timer = await get_timer(api, timer_id)
    after = time.time()
    assert set(timer) >= TIMER_FIELDS
    assert timer["id"] == timer_id
    assert timer["status"] == "pending"
    assert timer["url"] == URL
    assert timer["attempts"] == 0
    assert before <= timer["created_at"] <= after
    assert before + 100.5 - 0.01 <= timer["fire_at"] <= after + 100.5 + 0.01
    assert isinstance(timer["time_left"], int)
    assert not isinstance(timer["time_left"], bool)


@pytest.mark.parametrize("delay_s", [0.6, 5.5, 100.1, 3599.9, 7200.0])
async def test_time_left_is_rounded_up_while_pending(api: Client, delay_s: float) -> None:
    timer_id = await create(api, seconds=delay_s, url=URL)
    before = time.time()
    timer = await get_timer(api, timer_id)
    after = time.time()
    left = timer["time_left"]
    assert isinstance(left, int)
    remaining_early = timer["fire_at"] - before
    remaining_late = timer["fire_at"] - after
    # ceil of the remaining time, taken at some instant during the request
    assert math.ceil(remaining_late) <= left <= math.ceil(remaining_early)
    assert left >= remaining_late  # never rounded down
    assert left >= 1


async def test_time_left_is_zero_once_fired(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0.05, url=receiver.url)
    timer = await wait_status(api, timer_id, "fired")
    assert timer["time_left"] == 0
    assert timer["attempts"] == 1


async def test_time_left_is_zero_once_cancelled(api: Client) -> None:
    timer_id = await create(api, hours=2, url=URL)
    assert (await api.delete(f"/timers/{timer_id}")).status == 200
    timer = await get_timer(api, timer_id)
    assert timer["status"] == "cancelled"
    assert timer["time_left"] == 0


async def test_time_left_is_zero_when_retrying_or_failed(
    make_api: MakeApi, receiver: Receiver
) -> None:
    client = await make_api(max_attempts=2, backoff_base_s=0.3, backoff_max_s=0.3)

    async def fail(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.respond = fail
    timer_id = await create(client, seconds=0, url=receiver.url)
    await receiver.wait_for(1)
    retrying = await wait_status(client, timer_id, "retrying", "failed")
    assert retrying["time_left"] == 0
    failed = await wait_status(client, timer_id, "failed")
    assert failed["time_left"] == 0


async def test_time_left_is_zero_once_due(api: Client) -> None:
    # a past instant at a closed port: due, and possibly already retrying
    timer_id = await create(api, fire_at=time.time() - 10, url=closed_port_url())
    timer = await get_timer(api, timer_id)
    assert timer["time_left"] == 0


async def test_get_unknown_id_is_404(api: Client) -> None:
    await assert_problem(await api.get("/timers/AAAAAAAAAAAAAAAAAAAAAA"), 404)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", "PUT"])
async def test_timers_batch_is_only_the_batch_route(api: Client, method: str) -> None:
    # SPEC: a 405's Allow lists exactly the methods of that path (it was 404, or 405 with
    # the methods of /timers/{id})
    resp = await api.request(method, "/timers/batch")
    await assert_problem(resp, 405)
    assert resp.headers["Allow"] == "POST"


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
async def test_malformed_id_is_404(api: Client, method: str, bad_id: str) -> None:
    kwargs: dict[str, Any] = {"json": {"url": URL}} if method == "PATCH" else {}
    resp = await api.request(method, f"/timers/{bad_id}", **kwargs)
    await assert_problem(resp, 404)


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
async def test_malformed_id_is_404_on_fire_and_attempts(api: Client, bad_id: str) -> None:
    await assert_problem(await api.post(f"/timers/{bad_id}/fire"), 404)
    await assert_problem(await api.get(f"/timers/{bad_id}/attempts"), 404)


@pytest.mark.parametrize(
    "raw_path",
    ["/timers/%ZZ", "/timers/%", "/timers/%00", "/timers/a%2Fb", "/timers/x%0A", "/timers/%FF%FE"],
)
async def test_badly_encoded_id_is_404(api: Client, raw_path: str) -> None:
    await assert_problem(await api.get(URL_(raw_path, encoded=True)), 404)
    await assert_problem(await api.post(URL_(raw_path + "/fire", encoded=True)), 404)


# -- GET /timers --------------------------------------------------------------------------------


async def test_list_of_an_empty_database(api: Client) -> None:
    resp = await api.get("/timers")
    assert resp.status == 200
    assert await resp.json() == {"timers": [], "next_cursor": None}


async def test_pagination_has_no_gaps_or_duplicates_with_ties(api: Client) -> None:
    base = time.time() + FAR_S
    # 250 timers, in groups of ten sharing the very same fire_at, created out of order
    items = [{"fire_at": base + (i * 7 % 25), "url": f"{URL}/{i}"} for i in range(250)]
    ids = await batch(api, items)
    for limit in (1, 7, 10, 100, 249, 250, 1000):
        seen = await all_timers(api, limit=limit)
        got = [t["id"] for t in seen]
        assert len(got) == len(set(got)) == 250, limit
        assert set(got) == set(ids)
        keys = [(t["fire_at"], t["id"]) for t in seen]
        assert [k[0] for k in keys] == sorted(k[0] for k in keys)


async def test_pagination_is_stable_while_earlier_timers_are_added(api: Client) -> None:
    base = time.time() + FAR_S
    ids = await batch(api, [{"fire_at": base + i, "url": URL} for i in range(30)])
    resp = await api.get("/timers", params={"limit": 10})
    page = await resp.json()
    await batch(api, [{"fire_at": base - 100, "url": URL}])  # sorts before the cursor
    got = [t["id"] for t in page["timers"]]
    cursor = page["next_cursor"]
    while cursor:
        page = await (await api.get("/timers", params={"limit": 10, "cursor": cursor})).json()
        got += [t["id"] for t in page["timers"]]
        cursor = page["next_cursor"]
    assert got == ids


async def test_limit_bounds_the_page(api: Client) -> None:
    await batch(api, [{"seconds": FAR_S + i, "url": URL} for i in range(5)])
    page = await (await api.get("/timers", params={"limit": 2})).json()
    assert len(page["timers"]) == 2
    assert isinstance(page["next_cursor"], str)
    page = await (await api.get("/timers", params={"limit": 5})).json()
    assert len(page["timers"]) == 5
    assert page["next_cursor"] is None
    page = await (await api.get("/timers")).json()
    assert len(page["timers"]) == 5


async def test_list_items_have_the_timer_fields(api: Client) -> None:
    await create(api, seconds=FAR_S, url=URL)
    (timer,) = (await (await api.get("/timers")).json())["timers"]
    assert set(timer) >= TIMER_FIELDS


async def test_status_filter(api: Client, receiver: Receiver) -> None:
    pending = await batch(api, [{"seconds": FAR_S, "url": URL} for _ in range(4)])
    cancelled = pending[:2]
    for timer_id in cancelled:
        assert (await api.delete(f"/timers/{timer_id}")).status == 200
    fired = await create(api, seconds=0, url=receiver.url)
    await wait_status(api, fired, "fired")

    async def ids(status: str) -> set[str]:
        return {t["id"] for t in await all_timers(api, status, limit=3)}

    assert await ids("pending") == set(pending[2:])
    assert await ids("cancelled") == set(cancelled)
    assert await ids("fired") == {fired}
    assert await ids("failed") == set()
    assert await ids("retrying") == set()
    assert await ids("all") == {*pending, fired}
    assert {t["id"] for t in await all_timers(api)} == {*pending, fired}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": ""}, "status"),
        ({"status": "PENDING"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "9" * 400}, "limit"),
        ({"limit": "\u00b2"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "e30"}, "cursor"),
        ({"cursor": "bnVsbA"}, "cursor"),
        ({"cursor": "W10"}, "cursor"),
        ({"cursor": "WyJhIiwgImIiXQ"}, "cursor"),
        ({"cursor": "WzEsIDJd"}, "cursor"),
        ({"cursor": "WzEsMiwzXQ"}, "cursor"),
        ({"cursor": "/////w"}, "cursor"),
        ({"cursor": "x" * 5_000}, "cursor"),
    ],
    ids=lambda v: repr(v)[:40],
)
async def test_bad_list_parameters_are_422(api: Client, params: dict[str, str], field: str) -> None:
    await assert_invalid(await api.get("/timers", params=params), field)


@pytest.mark.parametrize(
    "decoded",
    [
        [10**400, "x"],
        [1e308 * 10, "x"],
        [-(10**400), "x"],
        [True, "x"],
        [None, "x"],
        [1, None],
        {"a": 1, "b": 2},
        [[1], "x"],
    ],
    ids=["huge-int", "inf", "huge-negative-int", "bool", "null", "null-id", "object", "list"],
)
async def test_forged_cursor_is_never_5xx(api: Client, decoded: Any) -> None:
    raw = json.dumps(decoded).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    resp = await api.get("/timers", params={"cursor": cursor})
    assert resp.status in (200, 422), await resp.text()
    if resp.status == 422:
        await assert_invalid(resp, "cursor")


async def test_several_bad_list_parameters_are_reported_together(api: Client) -> None:
    resp = await api.get("/timers", params={"status": "x", "limit": "0", "cursor": "!"})
    await assert_invalid(resp, "status", "limit", "cursor")


async def test_limit_up_to_the_configured_maximum(make_api: MakeApi) -> None:
    client = await make_api(list_limit_max=5)
    assert (await client.get("/timers", params={"limit": "5"})).status == 200
    await assert_invalid(await client.get("/timers", params={"limit": "6"}), "limit")


# -- DELETE ---------------------------------------------------------------------------------


async def test_delete_cancels(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0.2, url=receiver.url)
    resp = await api.delete(f"/timers/{timer_id}")
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == timer_id
    assert body["status"] == "cancelled"
    assert body["time_left"] == 0
    assert set(body) >= TIMER_FIELDS
    assert (await get_timer(api, timer_id))["status"] == "cancelled"
    # a later timer fires; the cancelled one, due earlier, never does
    other = await create(api, seconds=0.3, url=receiver.url)
    await receiver.wait_for(1)
    await wait_status(api, other, "fired")
    assert receiver.ids() == [other]


async def test_delete_twice_keeps_it_cancelled(api: Client) -> None:
    timer_id = await create(api, seconds=FAR_S, url=URL)
    first = await api.delete(f"/timers/{timer_id}")
    assert first.status == 200
    again = await api.delete(f"/timers/{timer_id}")
    assert again.status == 200  # cancelling twice is not an error: it answers the timer as is
    assert await again.json() == await first.json() | {"time_left": 0}
    assert (await get_timer(api, timer_id))["status"] == "cancelled"


async def test_delete_fired_is_409(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0, url=receiver.url)
    await wait_status(api, timer_id, "fired")
    await assert_problem(await api.delete(f"/timers/{timer_id}"), 409)
    assert (await get_timer(api, timer_id))["status"] == "fired"


async def test_delete_unknown_is_404(api: Client) -> None:
    await assert_problem(await api.delete("/timers/AAAAAAAAAAAAAAAAAAAAAA"), 404)


async def test_delete_failed_timer_cancels_it(make_api: MakeApi) -> None:
    client = await make_api(max_attempts=1)
    timer_id = await create(client, seconds=0, url=closed_port_url())
    await wait_status(client, timer_id, "failed")
    resp = await client.delete(f"/timers/{timer_id}")
    assert resp.status == 200
    assert (await resp.json())["status"] == "cancelled"


# -- POST /timers/<id>/fire ---------------------------------------------------------------


async def test_fire_now_delivers_at_once(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, hours=5, url=receiver.url)
    asked_at = time.time()
    resp = await api.post(f"/timers/{timer_id}/fire")
    assert resp.status == 202
    body = await resp.json()
    assert body["id"] == timer_id
    assert set(body) >= TIMER_FIELDS
    (hit,) = await receiver.wait_for(1, timeout_s=5)
    assert hit.path == f"/hook/{timer_id}"
    assert hit.arrived_at - asked_at < 2.0
    fired = await wait_status(api, timer_id, "fired")
    assert fired["time_left"] == 0
    # the manual fire's instant: the moment it was asked for
    assert abs(float(hit.headers["Timerd-Fire-At"]) - asked_at) < 1.0


async def test_fire_twice_after_delivery_is_409(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, hours=5, url=receiver.url)
    assert (await api.post(f"/timers/{timer_id}/fire")).status == 202
    await wait_status(api, timer_id, "fired")
    await assert_problem(await api.post(f"/timers/{timer_id}/fire"), 409)
    assert len(receiver.hits) == 1


async def test_fire_unknown_is_404(api: Client) -> None:
    await assert_problem(await api.post("/timers/AAAAAAAAAAAAAAAAAAAAAA/fire"), 404)


async def test_fire_cancelled_is_409(api: Client) -> None:
    timer_id = await create(api, hours=5, url=URL)
    assert (await api.delete(f"/timers/{timer_id}")).status == 200
    await assert_problem(await api.post(f"/timers/{timer_id}/fire"), 409)


@pytest.mark.parametrize("margin_s", [0.003, 0.02])
async def test_cancel_just_before_due_never_fires(
    api: Client, receiver: Receiver, margin_s: float
) -> None:
    service = api.server.app[SERVICE]
    real_cancel = service.cancel
    seen_at: list[float] = []

    async def timed_cancel(*args: Any) -> Any:
        seen_at.append(time.time())
        return await real_cancel(*args)

    due_at = time.time() + 0.2
    timer_id = await create(api, fire_at=due_at, url=receiver.url)
    marker = await create(api, fire_at=due_at + 0.1, url=receiver.url)
    await asyncio.sleep(max(0.0, due_at - margin_s - time.time()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(service, "cancel", timed_cancel)
        resp = await api.delete(f"/timers/{timer_id}")
    if seen_at[0] < due_at:  # seen before it was due: the cancel must win
        assert resp.status == 200, await resp.text()
    await wait_status(api, marker, "fired")
    if resp.status == 200:
        with pytest.raises(TimeoutError):
            await receiver.wait_for(2, timeout_s=0.2)
        assert receiver.ids() == [marker]
    else:  # too late on a busy machine: it was being delivered, and is delivered once
        await assert_problem(resp, 409)
        await wait_status(api, timer_id, "fired")
        assert sorted(receiver.ids()) == sorted([timer_id, marker])


async def test_fire_now_of_a_soon_due_timer_delivers_once(api: Client, receiver: Receiver) -> None:
    due_at = time.time() + 0.2
    timer_id = await create(api, fire_at=due_at, url=receiver.url)
    assert (await api.post(f"/timers/{timer_id}/fire")).status == 202
    await receiver.wait_for(1)
    await wait_status(api, timer_id, "fired")
    with pytest.raises(TimeoutError):
        await receiver.wait_for(2, timeout_s=max(0.1, due_at + 0.2 - time.time()))
    assert receiver.ids() == [timer_id]


# -- health, metrics, unknown routes ---------------------------------------------------


async def test_healthz(api: Client) -> None:
    resp = await api.get("/healthz")
    assert resp.status == 200


async def test_metrics_is_prometheus_text(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0, url=receiver.url)
    await wait_status(api, timer_id, "fired")
    resp = await api.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    names = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE ") and len(line.split()) >= 4
    }
    assert names
    assert all(n.startswith("timerd_") for n in names), names
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert any(line.startswith("timerd_timers_created") for line in samples)
    created = [
        float(line.split()[-1])
        for line in samples
        if line.startswith("timerd_timers_created_total")
    ]
    assert created == [1.0]


async def test_openapi_json_is_served(api: Client) -> None:
    resp = await api.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert str((await resp.json())["openapi"]).startswith("3.")


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/api/timers",
        "/timers/",
        "/timers/x/y",
        "/timers/x/fire/more",
        "/healthz/",
        "/openapi",
    ],
)
async def test_unknown_path_is_404_problem(api: Client, path: str) -> None:
    body = await assert_problem(await api.get(path), 404)
    assert body["type"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/timers"),
        ("DELETE", "/timers"),
        ("PATCH", "/timers"),
        ("GET", "/timers/batch/fire"),
        ("POST", "/timers/abc"),
        ("PUT", "/timers/abc"),
        ("GET", "/timers/abc/fire"),
        ("DELETE", "/timers/abc/fire"),
        ("POST", "/timers/abc/attempts"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
        ("POST", "/openapi.json"),
        ("HEAD", "/healthz"),
    ],
)
async def test_wrong_method_is_405_problem(api: Client, method: str, path: str) -> None:
    resp = await api.request(method, path)
    assert resp.status == 405
    if method != "HEAD":
        await assert_problem(resp, 405)


async def test_405_names_the_allowed_methods(api: Client) -> None:
    """RFC 9110 section 15.5.6: a 405 answer must carry an Allow header."""
    resp = await api.put("/timers")
    await assert_problem(resp, 405)
    assert set(resp.headers.get("Allow", "").replace(" ", "").split(",")) == {"GET", "POST"}


async def test_list_live_is_pending_and_retrying_by_due_time(api: Client) -> None:
    """SPEC: `status` is one status, `live` (pending and retrying) or `all`."""
    soon = await api.post("/timers", json={"seconds": 60, "url": "http://127.0.0.1:9/a"})
    later = await api.post("/timers", json={"seconds": 120, "url": "http://127.0.0.1:9/a"})
    gone = await api.post("/timers", json={"seconds": 30, "url": "http://127.0.0.1:9/a"})
    ids = [(await r.json())["id"] for r in (soon, later, gone)]
    assert (await api.delete(f"/timers/{ids[2]}")).status == 200
    resp = await api.get("/timers", params={"status": "live", "limit": "1"})
    assert resp.status == 200
    page = await resp.json()
    assert [t["id"] for t in page["timers"]] == [ids[0]]
    resp = await api.get("/timers", params={"status": "live", "cursor": page["next_cursor"]})
    rest = await resp.json()
    assert [t["id"] for t in rest["timers"]] == [ids[1]]
    assert rest["next_cursor"] is None
