"""What an attempt makes of odd answers and odd DNS: `Retry-After` on a 2xx, no address at all."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from tests.api_helpers import create, wait_attempts, wait_status
from tests.conftest import AiohttpClient, make_settings
from tests.reliability.test_receiver_faults import FaultyServer, faulty
from timerd.daemon.app import build_app
from timerd.delivery.deliverer import Deliverer, DeliveryPolicy, DeliveryResult, parse_retry_after
from timerd.models import Timer, new_id

UNREADABLE = ["\xb9", "\xb2\xb3", "\u0661\u0662", "\uff11", "1e3", "-5", "soon", "Mon, 99 Foo"]
"""Retry-After values nobody can read; the first three pass str.isdigit()."""

POLICY = DeliveryPolicy(
    attempt_timeout_s=2,
    max_in_flight=4,
    max_per_host=4,
    max_attempts=3,
    backoff_base_s=0.05,
    backoff_max_s=0.1,
    retry_after_max_s=60,
)


def answer(status: str, retry_after: bytes) -> bytes:
    """A raw HTTP answer with a Retry-After header of exactly `retry_after`."""
    return (
        f"HTTP/1.1 {status}\r\n".encode()
        + b"Retry-After: "
        + retry_after
        + b"\r\nContent-Length: 0\r\n\r\n"
    )


def always(raw: bytes) -> Any:
    """A raw receiver's behaviour: answer every request with `raw`."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return behaviour


class NoAddressResolver(AbstractResolver):
    """A resolver whose every answer is empty (a name with no A or AAAA record)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls.append(host)
        return []

    async def close(self) -> None:
        pass


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    d = Deliverer(POLICY)
    await d.start()
    yield d
    await d.close()


def timer_for(url: str) -> Timer:
    now = time.time()
    return Timer(id=new_id(), url=url, fire_at=now, created_at=now, next_at=now, updated_at=now)


async def send_to(deliverer: Deliverer, server: FaultyServer) -> DeliveryResult:
    return await deliverer.send(timer_for(server.url), 1)


@pytest.mark.parametrize("value", UNREADABLE)
def test_an_unreadable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value, time.time()) is None


def test_a_readable_retry_after_is_read() -> None:
    assert parse_retry_after(" 7 ", 0.0) == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0


@given(st.text())
def test_retry_after_parsing_never_raises(value: str) -> None:
    parse_retry_after(value, 1_800_000_000.0)


async def test_a_2xx_with_an_unreadable_retry_after_is_delivered(deliverer: Deliverer) -> None:
    """Issue 14 item 3: `Retry-After: \\xb9` on a 200 made a delivered webhook a retry."""
    async with faulty(always(answer("200 OK", b"\xb9"))) as server:
        result = await send_to(deliverer, server)
    assert (result.delivered, result.status_code, result.error) == (True, 200, None)
    assert result.retry_after_s is None


async def test_a_2xx_retry_after_means_nothing(deliverer: Deliverer) -> None:
    async with faulty(always(answer("202 Accepted", b"30"))) as server:
        result = await send_to(deliverer, server)
    assert result.delivered
    assert result.retry_after_s is None


async def test_an_unreadable_retry_after_on_a_503_is_a_plain_retry(deliverer: Deliverer) -> None:
    async with faulty(always(answer("503 Busy", b"\xb9"))) as server:
        result = await send_to(deliverer, server)
    assert (result.delivered, result.status_code, result.error) == (False, 503, "HTTP 503")
    assert result.retry_after_s is None
    assert not result.permanent


async def test_the_daemon_records_a_2xx_with_an_unreadable_retry_after_as_delivered(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    api = await aiohttp_client(build_app(make_settings(tmp_path, max_attempts=8)))
    async with faulty(always(answer("200 OK", b"\xb9"))) as server:
        tid = await create(api, seconds=0, url=server.url)
        fired = await wait_status(api, tid, "fired", "retrying", "failed")
        assert server.requests == 1
    assert (fired["status"], fired["attempts"]) == ("fired", 1)
    attempts = await wait_attempts(api, tid, 1)
    assert [(a["outcome"], a["status_code"], a["error"]) for a in attempts] == [
        ("delivered", 200, None)
    ]


async def test_a_name_without_addresses_fails_the_attempt_cleanly() -> None:
    """Issue 14 item 17: an empty resolver answer was an AssertionError, not a failed attempt."""
    resolver = NoAddressResolver()
    deliverer = Deliverer(POLICY, resolver=resolver)
    await deliverer.start()
    try:
        result = await deliverer.send(timer_for("http://nowhere.test:8080/hook"), 1)
    finally:
        await deliverer.close()
    assert resolver.calls == ["nowhere.test"]
    assert (result.delivered, result.status_code, result.permanent) == (False, None, False)
    assert (
        result.error == "cannot connect to nowhere.test:8080: nowhere.test resolved to no address"
    )


async def test_the_daemon_retries_then_fails_a_name_without_addresses(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """Through the outbound policy's resolver, as the daemon runs it."""
    resolver = NoAddressResolver()
    settings = make_settings(tmp_path, max_attempts=2)
    api = await aiohttp_client(build_app(settings, resolver=resolver))
    tid = await create(api, seconds=0, url="http://nowhere.test/hook")
    failed = await wait_status(api, tid, "failed")
    assert failed["attempts"] == 2
    assert (
        failed["last_error"]
        == "cannot connect to nowhere.test:80: nowhere.test resolved to no address"
    )
    attempts = await wait_attempts(api, tid, 2)
    assert [a["outcome"] for a in attempts] == ["retry", "failed"]
    assert resolver.calls == ["nowhere.test", "nowhere.test"]
