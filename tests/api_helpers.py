"""Helpers shared by the API tests: problem+json checks, create, read, wait (no tests here)."""

from __future__ import annotations

import socket
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.waiting import eventually

Client = TestClient[Any, Any]
PROBLEM = "application/problem+json"
FAR_S = 3600  # a delay long enough that a timer never fires during a test


async def assert_problem(resp: ClientResponse, status: int) -> dict[str, Any]:
    """Assert `resp` is an RFC 9457 problem with `status`; return its body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM, (resp.content_type, text)
    body: dict[str, Any] = await resp.json(content_type=None)
    for key in ("type", "title", "status", "detail"):
        assert key in body, body
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["status"] == status
    assert "Traceback" not in text
    return body


async def assert_invalid(resp: ClientResponse, *fields: str) -> dict[str, Any]:
    """Assert a 422 problem whose `errors[].field` are exactly `fields`; return the body."""
    body = await assert_problem(resp, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    for error in errors:
        assert isinstance(error["field"], str)
        assert isinstance(error["message"], str)
        assert error["message"]
    assert sorted(e["field"] for e in errors) == sorted(fields), errors
    return body


async def create(client: Client, **body: Any) -> str:
    """Create a timer and return its id."""
    resp = await client.post("/timers", json=body)
    assert resp.status == 201, await resp.text()
    timer_id: str = (await resp.json())["id"]
    return timer_id


async def get_timer(client: Client, timer_id: str) -> dict[str, Any]:
    """Return the timer's JSON."""
    resp = await client.get(f"/timers/{timer_id}")
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def wait_status(
    client: Client, timer_id: str, *statuses: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Poll GET /timers/<id> until its status is one of `statuses`, or fail at the deadline."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await get_timer(client, timer_id))
        return seen["status"] in statuses

    await eventually(reached, f"timer {timer_id} to be one of {statuses}", timeout_s)
    return seen


async def wait_attempts(
    client: Client, timer_id: str, count: int, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Poll GET /timers/<id>/attempts until it holds `count` entries."""
    attempts: list[dict[str, Any]] = []

    async def enough() -> bool:
        resp = await client.get(f"/timers/{timer_id}/attempts")
        assert resp.status == 200, await resp.text()
        attempts[:] = (await resp.json())["attempts"]
        return len(attempts) >= count

    await eventually(enough, f"{count} attempts of timer {timer_id}", timeout_s)
    return attempts


async def all_timers(client: Client, query: str = "", limit: int = 1000) -> list[dict[str, Any]]:
    """Return every timer by walking the cursor pages."""
    timers: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if query:
            params["status"] = query
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/timers", params=params)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        timers.extend(page["timers"])
        cursor = page["next_cursor"]
        if cursor is None:
            return timers


def closed_port_url() -> str:
    """Return an http URL on 127.0.0.1 whose port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
