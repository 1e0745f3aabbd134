"""How the webhook client frames answers on the wire: raw servers on 127.0.0.1 write exact bytes.

The point of each test is a connection's framing: whether the client reuses a connection
only after it read a whole answer, and gives up cleanly on answers it cannot trust.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.test_receiver_faults import FaultyServer, faulty
from timerd.delivery.webhook_client import WebhookClient
from timerd.delivery.webhook_conn import INTERIM_LIMIT, BadAnswer

AGENT = "timerd/test"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


class Script:
    """A raw receiver: `first` answers the first request; `then` the next ones on that
    connection; every later connection gets `OK`. Counts requests per connection."""

    def __init__(self, first: bytes, then: bytes = OK) -> None:
        self.first, self.then = first, then
        self.served: dict[object, int] = {}  # peer -> requests, in connection order

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        n = self.served.setdefault(peer, 0)
        self.served[peer] = n + 1
        if len(self.served) > 1:
            writer.write(OK)
        else:
            writer.write(self.first if n == 0 else self.then)
        await writer.drain()

    def per_connection(self) -> list[int]:
        """Return how many requests each connection carried, first connection first."""
        return list(self.served.values())


async def post_twice(server: FaultyServer) -> tuple[int, int]:
    client = WebhookClient(user_agent=AGENT)
    try:
        first = await client.post(server.url, {}, "a")
        second = await client.post(server.url, {}, "b")
    finally:
        await client.close()
    return first.status, second.status


async def test_chunk_data_ending_in_a_last_chunk_lookalike_does_not_end_the_body() -> None:
    """Issue 14 item 2: chunk data ending in `0\\r\\n` and a packet ending in `0\\r\\n\\r\\n`.

    The first answer's body is not over when its first packet ends (its last chunk comes
    only with the next request's answer): the connection must not be reused for delivery 2.
    """
    tricky = CHUNKED_HEAD + b"5\r\nxx0\r\n\r\n"  # one chunk of 5 bytes: "xx0\r\n"
    rest_then_ok = b"0\r\n\r\n" + OK
    script = Script(tricky, rest_then_ok)
    async with faulty(script) as server:
        assert await post_twice(server) == (200, 200)
        assert server.requests == 2
    assert script.per_connection() == [1, 1]  # delivery 2 went on a new connection


async def test_a_whole_chunked_answer_keeps_the_connection() -> None:
    """Chunk data that is itself `0\\r\\n\\r\\n`, the whole answer in one packet: reused."""
    whole = CHUNKED_HEAD + b"5\r\n0\r\n\r\n\r\n" + b"0\r\n\r\n"
    script = Script(whole)
    async with faulty(script) as server:
        assert await post_twice(server) == (200, 200)
    assert script.per_connection() == [2]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\nruns until the close", id="no-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", id="close"
        ),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", id="http-1.0"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", id="not-chunked-last"
        ),
        pytest.param(CHUNKED_HEAD + b"zz\r\n", id="bad-chunk-size"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70000, id="big"),
    ],
)
async def test_answers_whose_end_cannot_be_trusted_close_the_connection(answer: bytes) -> None:
    script = Script(answer)
    async with faulty(script) as server:
        assert await post_twice(server) == (200, 200)
    assert script.per_connection() == [1, 1]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Content-Length",
            id="length-and-chunked",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "Content-Length",
            id="two-lengths",
        ),
        pytest.param(b"SMTP ready\r\n\r\n", "not an HTTP answer", id="not-http"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101", id="upgrade"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000, "too long", id="endless-head"),
    ],
)
async def test_an_answer_that_is_not_http_as_we_know_it_fails_the_attempt(
    answer: bytes, reason: str
) -> None:
    script = Script(answer)
    async with faulty(script) as server:
        client = WebhookClient(user_agent=AGENT)
        try:
            with pytest.raises(BadAnswer, match=reason):
                await client.post(server.url, {}, "a")
            assert (await client.post(server.url, {}, "b")).status == 200
        finally:
            await client.close()
    assert script.per_connection() == [1, 1]  # the bad connection was dropped


async def test_interim_answers_before_the_real_one() -> None:
    """A few 1xx (100 Continue, 103 Early Hints) then 204: delivered, connection kept."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 3 + b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
    script = Script(interim + b"HTTP/1.1 204 No Content\r\n\r\n")
    async with faulty(script) as server:
        assert await post_twice(server) == (204, 200)
    assert script.per_connection() == [2]


async def test_thousands_of_100_continue_fail_the_attempt_cleanly() -> None:
    """Issue 14 item 4: 3,000 `100 Continue` then a 200 in one packet: no RecursionError."""
    flood = b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + OK
    script = Script(flood)
    async with faulty(script) as server:
        client = WebhookClient(user_agent=AGENT)
        try:
            with pytest.raises(BadAnswer, match=f"more than {INTERIM_LIMIT} interim"):
                await client.post(server.url, {}, "a")
            assert (await client.post(server.url, {}, "b")).status == 200
        finally:
            await client.close()
    assert script.per_connection() == [1, 1]
