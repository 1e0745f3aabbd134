"""The webhook request as a real receiver sees it: URL joining, method, body, headers."""

from __future__ import annotations

import time

import pytest

from tests.api_helpers import Client, create, get_timer, wait_status
from tests.conftest import Receiver
from timerd import __version__


@pytest.mark.parametrize(
    ("suffix", "path", "query"),
    [
        ("", "/hook/{id}", ""),
        ("/", "/hook/{id}", ""),
        ("?k=v", "/hook/{id}", "k=v"),
        ("/?k=v&x=1", "/hook/{id}", "k=v&x=1"),
        ("/deeper/path", "/hook/deeper/path/{id}", ""),
        ("/a%20b?q=1", "/hook/a b/{id}", "q=1"),
    ],
)
async def test_webhook_path_and_query(
    api: Client, receiver: Receiver, suffix: str, path: str, query: str
) -> None:
    timer_id = await create(api, seconds=0, url=receiver.url + suffix)
    (hit,) = await receiver.wait_for(1)
    assert hit.path == path.format(id=timer_id)
    assert hit.query == query


async def test_webhook_request_shape(api: Client, receiver: Receiver) -> None:
    timer_id = await create(api, seconds=0.1, url=receiver.url)
    (hit,) = await receiver.wait_for(1)
    timer = await get_timer(api, timer_id)
    assert hit.method == "POST"
    assert hit.body == b""
    assert hit.headers.get("Content-Length", "0") == "0"
    assert hit.headers["User-Agent"] == f"timerd/{__version__}"
    assert hit.headers["Timerd-Attempt"] == "1"
    assert abs(float(hit.headers["Timerd-Fire-At"]) - timer["fire_at"]) <= 0.001
    # delivered at or after its due time, within a generous bound on a shared machine
    assert hit.arrived_at >= timer["fire_at"] - 0.005
    assert hit.arrived_at - timer["fire_at"] < 2.0


async def test_fire_at_header_of_an_absolute_timer(api: Client, receiver: Receiver) -> None:
    fire_at = round(time.time() + 0.2, 3)
    timer_id = await create(api, fire_at=fire_at, url=receiver.url)
    (hit,) = await receiver.wait_for(1)
    assert float(hit.headers["Timerd-Fire-At"]) == pytest.approx(fire_at, abs=0.001)
    await wait_status(api, timer_id, "fired")


async def test_many_timers_each_fire_once_in_due_order(api: Client, receiver: Receiver) -> None:
    now = time.time()
    resp = await api.post(
        "/timers/batch",
        json={"timers": [{"fire_at": now + 0.1 + 0.05 * i, "url": receiver.url} for i in range(8)]},
    )
    ids = (await resp.json())["ids"]
    await receiver.wait_for(8)
    for timer_id in ids:
        await wait_status(api, timer_id, "fired")
    assert sorted(receiver.ids()) == sorted(ids)
    assert len(receiver.hits) == 8
