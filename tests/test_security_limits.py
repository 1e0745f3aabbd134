"""Limits: max_pending (429), and the body, URL and delay bounds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Receiver, make_settings
from tests.waiting import eventually
from timerd.api.app_keys import SERVICE
from timerd.daemon.app import build_app
from timerd.firing.live_count import LiveCount

MakeApi = Callable[..., Awaitable[TestClient[Any, Any]]]
AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
FAR = {"hours": 1, "url": "https://a.example/h"}


async def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json(content_type=None)
    return body


async def test_creates_over_max_pending_are_429(make_api: MakeApi) -> None:
    client = await make_api(max_pending=3)
    ids = []
    for _ in range(3):
        resp = await client.post("/timers", json=FAR)
        assert resp.status == 201
        ids.append((await resp.json())["id"])
    problem = await _problem(await client.post("/timers", json=FAR), 429)
    assert problem["type"] == "urn:timerd:problem:too-many-timers"
    assert "max_pending" in problem["detail"]
    await _problem(await client.post("/timers/batch", json={"timers": [FAR]}), 429)

    assert (await client.delete(f"/timers/{ids[0]}")).status == 200  # frees one place
    assert (await client.post("/timers", json=FAR)).status == 201
    await _problem(await client.post("/timers", json=FAR), 429)


async def test_a_batch_counts_every_item(make_api: MakeApi) -> None:
    client = await make_api(max_pending=3)
    assert (await client.post("/timers", json=FAR)).status == 201
    await _problem(await client.post("/timers/batch", json={"timers": [FAR] * 3}), 429)
    assert (await client.post("/timers/batch", json={"timers": [FAR] * 2})).status == 201


async def test_fired_timers_leave_the_count(make_api: MakeApi, receiver: Receiver) -> None:
    client = await make_api(max_pending=1)
    assert (await client.post("/timers", json={"seconds": 0, "url": receiver.url})).status == 201
    await receiver.wait_for(1)
    service = client.server.app[SERVICE]
    await eventually(lambda: not service.pending.value, "the live count to drop to 0", 5)
    assert (await client.post("/timers", json=FAR)).status == 201


async def test_the_count_is_rebuilt_from_the_store_at_boot(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    first = await aiohttp_client(build_app(make_settings(tmp_path, max_pending=0)))
    for _ in range(3):
        assert (await first.post("/timers", json=FAR)).status == 201
    await first.close()

    second = await aiohttp_client(build_app(make_settings(tmp_path, max_pending=3)))
    service = second.server.app[SERVICE]
    # counted in the background, right after boot
    await eventually(lambda: service.pending.value >= 3, "the boot count of live timers", 5)
    await _problem(await second.post("/timers", json=FAR), 429)


def test_pending_count_arithmetic() -> None:
    count = LiveCount(limit=10)
    count.add(2)  # creates before the boot count started: included in the count
    start = count.mark_count_start()
    count.add(1)  # a create while the count runs: may or may not be in it
    count.set_counted(7, start)  # the store held 5 old + the 2 above
    assert count.value == 8
    count.add(-1)
    assert count.value == 7
    unlimited = LiveCount(limit=0)
    unlimited.add(10**9)
    unlimited.check(1)


# the other bounds, enforced where the docs say ------------------------------------------------


async def test_body_size_url_length_and_delay_are_bounded(make_api: MakeApi) -> None:
    client = await make_api(max_body_bytes=2048, max_url_length=64, max_delay_s=3600)
    big = {"seconds": 1, "url": "https://a.example/h", "pad": "x" * 4096}
    await _problem(await client.post("/timers", json=big), 413)
    long_url = "https://a.example/" + "a" * 64
    problem = await _problem(await client.post("/timers", json={"url": long_url}), 422)
    assert problem["errors"][0]["field"] == "url"
    problem = await _problem(
        await client.post("/timers", json={"hours": 2, "url": "https://a.example/"}), 422
    )
    assert "3600" in problem["detail"]


async def test_oversized_headers_are_400_not_5xx(api: TestClient[Any, Any]) -> None:
    resp = await api.get("/timers", headers={"X-Big": "a" * 9000})
    assert resp.status == 400
    many = {f"X-H{i}": "1" for i in range(200)}
    resp = await api.get("/timers", headers=many)
    assert resp.status == 400
