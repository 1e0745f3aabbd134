"""The idle connection pool: bounded, no entry for an origin without idle connections, LRU."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.reliability.test_receiver_faults import FaultyServer, faulty
from tests.test_security_outbound import FlipResolver
from timerd.delivery.webhook_client import WebhookClient
from timerd.delivery.webhook_conn import Connection
from timerd.delivery.webhook_pool import IdlePool

KEEP = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class KeepThenClose:
    """Answers a connection's first request keep-alive, its second with `Connection: close`."""

    def __init__(self) -> None:
        self.served: dict[object, int] = {}

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        n = self.served[peer] = self.served.get(peer, 0) + 1
        writer.write(KEEP if n == 1 else CLOSE)
        await writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[tuple[FaultyServer, KeepThenClose]]:
    script = KeepThenClose()
    async with faulty(script) as running:
        yield running, script


async def test_two_thousand_origins_leave_no_empty_entries(
    server: tuple[FaultyServer, KeepThenClose],
) -> None:
    """Issue 14 item 16: an origin whose connection was closed keeps no entry, and the pool
    never holds more than `max_idle` connections or origins."""
    running, script = server
    port = running.url.split(":")[2].split("/")[0]
    max_idle = 64
    client = WebhookClient(
        user_agent="timerd/test", resolver=FlipResolver("127.0.0.1"), max_idle=max_idle
    )
    try:
        for i in range(2000):
            url = f"http://o{i}.test:{port}/hook"
            assert (await client.post(url, {})).status == 200  # kept
            if i % 2:  # taken again, answered with `Connection: close`: not kept
                assert (await client.post(url, {})).status == 200
            assert len(client.idle) == client.idle.origins() <= max_idle
        assert len(client.idle) == max_idle - 1  # o1999's connection went with its close
        assert len(script.served) == 2000

        # the newest kept origin is reused; the oldest was evicted long ago
        await client.post(f"http://o1998.test:{port}/hook", {})
        assert len(script.served) == 2000
        await client.post(f"http://o0.test:{port}/hook", {})
        assert len(script.served) == 2001
    finally:
        await client.close()
    assert len(client.idle) == client.idle.origins() == 0


async def test_the_pool_reuses_the_newest_and_evicts_the_oldest(
    server: tuple[FaultyServer, KeepThenClose],
) -> None:
    running, _ = server
    port = int(running.url.split(":")[2].split("/")[0])
    loop = asyncio.get_running_loop()
    conns: list[Connection] = []
    for _ in range(4):
        _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        conns.append(conn)
    a, b = ("http", "a.test", 80), ("http", "b.test", 80)
    pool = IdlePool(max_idle=3, idle_timeout_s=60)
    try:
        pool.put(a, conns[0])
        pool.put(b, conns[1])
        pool.put(a, conns[2])
        assert (len(pool), pool.origins()) == (3, 2)
        pool.put(b, conns[3])  # full: the oldest, conns[0] of a, goes
        assert conns[0].closed
        assert (len(pool), pool.origins()) == (3, 2)
        assert pool.take(a) is conns[2]
        assert pool.take(a) is None
        assert (len(pool), pool.origins()) == (2, 1)  # a has no entry left
        assert pool.take(b) is conns[3]  # the newest first
        conns[1].close()
        assert pool.take(b) is None  # a closed idle connection is dropped, not handed out
        assert (len(pool), pool.origins()) == (0, 0)
    finally:
        for conn in conns:
            conn.close()
        pool.close()
