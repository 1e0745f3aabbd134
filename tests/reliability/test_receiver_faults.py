"""Campaign 2: receivers that hang, dawdle, reset, flood or redirect get the documented treatment.

Each fault is a raw asyncio server on 127.0.0.1 that misbehaves on purpose; the healthy
receiver is the shared aiohttp one. The key property: one bad receiver does not delay
timers aimed at other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests import api_helpers
from tests.conftest import Receiver
from tests.reliability.campaign import report, size

MakeApi = Callable[..., Awaitable[TestClient[Any, Any]]]
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FaultyServer:
    """A TCP server whose every connection runs `behaviour`; counts the requests it saw."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.url = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                del head
                await self.behaviour(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def faulty(behaviour: Behaviour) -> AsyncIterator[FaultyServer]:
    server = FaultyServer(behaviour)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def reset_before_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()
    raise ConnectionResetError


async def reset_mid_status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 2")
    await writer.drain()
    writer.transport.abort()
    raise ConnectionResetError


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    await writer.drain()
    writer.transport.abort()
    raise ConnectionResetError


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    for _ in range(10_000):  # bounded: 640 MiB if anyone read it all
        writer.write(chunk)
        await writer.drain()


async def huge_error_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = b"y" * (8 * 1024 * 1024)
    writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()


async def wait_status(
    api: TestClient[Any, Any], tid: str, status: str, timeout_s: float
) -> dict[str, Any]:
    return await api_helpers.wait_status(api, tid, status, timeout_s=timeout_s)


async def create(api: TestClient[Any, Any], url: str, **when: Any) -> str:
    """Create a timer due `when` (durations or fire_at; none: now)."""
    resp = await api.post("/timers", json={"url": url, **(when or {"seconds": 0})})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _healthy_lateness(
    api: TestClient[Any, Any], receiver: Receiver, bad_url: str | None, per_host: int
) -> list[float]:
    """Create `per_host` healthy timers (and as many for `bad_url`) due together; lateness."""
    receiver.hits.clear()
    due = time.time() + 2.0
    items = [{"url": receiver.url, "fire_at": due} for _ in range(per_host)]
    if bad_url is not None:
        items += [{"url": bad_url, "fire_at": due} for _ in range(per_host)]
    for start in range(0, len(items), 1000):
        resp = await api.post("/timers/batch", json={"timers": items[start : start + 1000]})
        assert resp.status == 201
    await receiver.wait_for(per_host, timeout_s=60)
    return sorted(h.arrived_at - due for h in receiver.hits)


async def test_hanging_host_does_not_delay_healthy_ones(
    make_api: MakeApi, receiver: Receiver
) -> None:
    """Healthy timers due with as many aimed at a hanging host arrive as fast as when alone."""
    per_host = size(1000, 3000)
    api = await make_api(attempt_timeout_s=5.0, max_per_host=64, max_in_flight=512)
    alone = await _healthy_lateness(api, receiver, None, per_host)
    async with faulty(hang) as bad:
        mixed = await _healthy_lateness(api, receiver, bad.url, per_host)
        open_to_bad = bad.requests
    p99_alone = statistics.quantiles(alone, n=100)[98]
    p99_mixed = statistics.quantiles(mixed, n=100)[98]
    report(
        "receiver_isolation",
        hanging_timers=per_host,
        healthy_timers=per_host,
        healthy_alone_p99_ms=round(p99_alone * 1000, 1),
        healthy_beside_hanging_p50_ms=round(statistics.median(mixed) * 1000, 1),
        healthy_beside_hanging_p99_ms=round(p99_mixed * 1000, 1),
        hanging_requests_open=open_to_bad,
    )
    assert open_to_bad <= 64  # the per-host limit held
    assert p99_mixed <= p99_alone * 1.5 + 0.25, (
        f"healthy timers were held up: p99 {p99_mixed:.3f} s beside a hanging host, "
        f"{p99_alone:.3f} s alone"
    )


@pytest.mark.parametrize(
    ("behaviour", "error_part"),
    [
        (reset_before_answer, "closed the connection"),
        (reset_mid_status_line, ""),
        (huge_error_body, "HTTP 500"),
    ],
    ids=["reset-before-answer", "reset-mid-status", "huge-error-body"],
)
async def test_misbehaving_receivers_are_retried_then_failed(
    make_api: MakeApi, behaviour: Behaviour, error_part: str
) -> None:
    api = await make_api(max_attempts=2, attempt_timeout_s=2.0)
    async with faulty(behaviour) as bad:
        tid = await create(api, bad.url)
        body = await wait_status(api, tid, "failed", 20)
        assert body["attempts"] == 2
        assert error_part in body["last_error"]
        assert bad.requests == 2


async def test_endless_body_is_not_read_to_the_end(make_api: MakeApi) -> None:
    api = await make_api(max_attempts=1, attempt_timeout_s=3.0)
    async with faulty(endless_body) as bad:
        tid = await create(api, bad.url)
        started = time.monotonic()
        body = await wait_status(api, tid, "fired", 10)
        assert time.monotonic() - started < 3.0  # took a bounded bite and moved on
        assert body["last_status_code"] == 200


async def test_reset_after_a_2xx_status_counts_as_delivered(make_api: MakeApi) -> None:
    """SPEC: any 2xx answer means delivered; a body cut short after it changes nothing."""
    api = await make_api(max_attempts=3)
    async with faulty(reset_mid_body) as bad:
        tid = await create(api, bad.url)
        body = await wait_status(api, tid, "fired", 10)
        assert body["attempts"] == 1
        assert bad.requests == 1


async def test_slow_receiver_within_timeout_is_delivered(
    make_api: MakeApi, receiver: Receiver
) -> None:
    async def slow(hit: Any) -> Any:
        from aiohttp import web

        await asyncio.sleep(0.5)
        return web.Response(status=204)

    receiver.respond = slow
    api = await make_api(attempt_timeout_s=2.0)
    tid = await create(api, receiver.url)
    body = await wait_status(api, tid, "fired", 10)
    assert body["attempts"] == 1
