"""Request bodies over a raw socket: malformed chunking is 400, a stalled or slow body is 408.

Each test writes bytes to a real server (the app on aiohttp's test server, or `timerd serve`)
and reads until the server closes, within a deadline: a server that neither answers nor closes
fails the test at that deadline instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import make_settings
from tests.procs import Daemon
from timerd.config import load_settings
from timerd.daemon.app import build_app

AiohttpServer = Callable[..., Awaitable[TestServer]]
BODY_TIMEOUT_S = 0.5
WAIT_S = 5.0  # far below the 30 s default: a pass shows the setting did it
MALFORMED_CHUNKS = b"2\r\n{}\r\nzz\r\n\r\n"  # the body: "zz" is no chunk size


def _head(path: str = "/timers", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Exchange:
    """What the server sent back on one connection, and when it closed it."""

    data: bytes
    closed_after_s: float

    @property
    def status(self) -> int | None:
        """The status of the first answer, or None if the server closed without one."""
        if not self.data:
            return None
        return int(self.data.split(b" ", 2)[1])

    def problem(self) -> dict[str, object]:
        """The JSON body of the first answer."""
        head, _, body = self.data.partition(b"\r\n\r\n")
        assert b"application/problem+json" in head, head
        problem: dict[str, object] = json.loads(body)
        return problem


async def _exchange(
    port: int, chunks: list[bytes], gap_s: float = 0.0, wait_s: float = WAIT_S
) -> Exchange:
    """Send `chunks` `gap_s` apart, then read until the server closes (fail after `wait_s`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    received = bytearray()

    async def read_all() -> None:
        while data := await reader.read(65536):
            received.extend(data)

    async def send_all() -> None:
        for index, chunk in enumerate(chunks):
            if index and gap_s:
                await asyncio.sleep(gap_s)
            if writer.is_closing():
                return
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                return

    reading = asyncio.create_task(read_all())
    sending = asyncio.create_task(send_all())
    try:
        async with asyncio.timeout(wait_s):
            await reading
    except TimeoutError:
        raise AssertionError(f"no close within {wait_s} s; got {bytes(received[:200])!r}") from None
    finally:
        sending.cancel()
        writer.close()
    return Exchange(bytes(received), time.monotonic() - started)


@pytest.fixture
async def port(aiohttp_server: AiohttpServer, tmp_path: Path) -> int:
    """A real server over the app, with a short request body deadline."""
    settings = make_settings(tmp_path, request_body_timeout_s=BODY_TIMEOUT_S)
    server = await aiohttp_server(build_app(settings), host="127.0.0.1")
    assert server.port is not None
    return server.port


@pytest.mark.parametrize(
    "body",
    [
        MALFORMED_CHUNKS,
        b"4\r\nHello\r\n0\r\n\r\n",  # aiohttp#10596: chunk data longer than its size
        b"6\r\nHello\r\n0\r\n\r\n",  # and shorter
        b"-2\r\n{}\r\n0\r\n\r\n",
    ],
)
async def test_malformed_chunking_is_refused_and_closed(port: int, body: bytes) -> None:
    answer = await _exchange(port, [_head(Transfer_Encoding="chunked") + body])
    assert answer.status in (400, None), answer.data[:200]


async def test_a_stalled_chunked_body_is_408_then_closed(port: int) -> None:
    answer = await _exchange(port, [_head(Transfer_Encoding="chunked") + b"2\r\n{}\r\n"])
    assert answer.status == 408, answer.data[:300]
    problem = answer.problem()
    assert problem["type"] == "urn:timerd:problem:request-timeout"
    assert "request_body_timeout_s" in str(problem["detail"])
    assert b"connection: close" in answer.data.lower()
    assert answer.closed_after_s >= BODY_TIMEOUT_S * 0.8


async def test_a_stalled_body_with_a_length_is_408(port: int) -> None:
    answer = await _exchange(port, [_head(Content_Length="100") + b'{"seconds": 1'])
    assert answer.status == 408, answer.data[:300]


async def test_a_trickling_body_is_bounded_in_total_not_per_byte(port: int) -> None:
    """A byte every 50 ms never goes idle, yet the whole body may take only the deadline."""
    body = json.dumps({"seconds": 60, "url": "https://a.example/" + "x" * 200}).encode()
    chunks = [_head(Content_Length=str(len(body)))] + [body[i : i + 1] for i in range(len(body))]
    answer = await _exchange(port, chunks, gap_s=0.05)  # would take over 12 s
    assert answer.status == 408, answer.data[:300]
    assert answer.closed_after_s < BODY_TIMEOUT_S + 2.0


async def test_a_body_no_handler_reads_does_not_hold_the_connection(port: int) -> None:
    """Answered at once; then the connection closes at the deadline, not after a 10 s drain."""
    head = _head("/timers/AAAAAAAAAAAAAAAAAAAAAA/fire", Content_Length="100")
    answer = await _exchange(port, [head + b"{"], wait_s=BODY_TIMEOUT_S + 3.0)
    assert answer.status == 404, answer.data[:300]


async def test_a_body_in_time_is_served_and_the_connection_kept(port: int) -> None:
    """A body slower than its head but within the deadline; then a second request."""
    body = json.dumps({"seconds": 60, "url": "https://a.example/h"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_head(Content_Length=str(len(body))))
        await writer.drain()
        await asyncio.sleep(BODY_TIMEOUT_S / 5)
        writer.write(body)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(WAIT_S):
            first = await reader.readuntil(b"\r\n\r\n")
            assert first.startswith(b"HTTP/1.1 201"), first
            length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            second = await reader.readuntil(b"\r\n\r\n")
            assert second.startswith(b"HTTP/1.1 200"), second
    finally:
        writer.close()


def test_the_setting_has_one_name_everywhere() -> None:
    settings = load_settings(env={"TIMERD_REQUEST_BODY_TIMEOUT_S": "2.5"})
    assert settings.request_body_timeout_s == 2.5
    assert load_settings(env={}).request_body_timeout_s == 30.0


@pytest.mark.e2e
async def test_a_real_daemon_neither_hangs_on_bad_chunks_nor_on_a_stalled_body(
    tmp_path: Path,
) -> None:
    async with Daemon(tmp_path / "t.db", "--request-body-timeout-s", "1") as daemon:
        port = int(daemon.url.rsplit(":", 1)[1])
        chunked = _head(Transfer_Encoding="chunked")
        bad = await _exchange(port, [chunked + MALFORMED_CHUNKS])
        assert bad.status in (400, None), bad.data[:200]
        stalled = await _exchange(port, [chunked + b"2\r\n{}\r\n"])
        assert stalled.status == 408, stalled.data[:300]
        assert 0.8 <= stalled.closed_after_s < 4.0
