"""A first end-to-end check through the in-process app: create, fire, observe."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Receiver


async def test_timer_fires_to_url_slash_id(api: TestClient[Any, Any], receiver: Receiver) -> None:
    resp = await api.post("/timers", json={"seconds": 0.2, "url": receiver.url})
    assert resp.status == 201
    timer_id = (await resp.json())["id"]
    assert resp.headers["Location"] == f"/timers/{timer_id}"
    (hit,) = await receiver.wait_for(1)
    assert hit.method == "POST"
    assert hit.path == f"/hook/{timer_id}"
    assert hit.body == b""
    assert hit.headers["Timerd-Attempt"] == "1"
    body = await (await api.get(f"/timers/{timer_id}")).json()
    assert body["time_left"] == 0
