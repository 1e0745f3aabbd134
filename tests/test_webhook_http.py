"""The lean webhook client against real servers: framing, keep-alive, TLS, odd answers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from timerd.delivery.webhook_client import ReceiverClosed, WebhookClient

AGENT = "timerd/test"


class Seen:
    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.bodies: list[bytes] = []
        self.peers: set[object] = set()


@pytest.fixture
async def plain_server() -> AsyncIterator[tuple[TestServer, Seen]]:
    seen = Seen()

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.requests.append(request)
        seen.bodies.append(await request.read())
        seen.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        status = int(request.query.get("status", "200"))
        body = b"x" * int(request.query.get("body", "0"))
        headers = {"Retry-After": request.query["ra"]} if "ra" in request.query else None
        if request.query.get("chunked"):
            response = web.StreamResponse(status=status, headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(body)
            await response.write_eof()
            return response
        return web.Response(status=status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, seen
    await server.close()


async def test_post_is_empty_bodied_with_headers_and_reuses_the_connection(
    plain_server: tuple[TestServer, Seen],
) -> None:
    server, seen = plain_server
    client = WebhookClient(user_agent=AGENT)
    try:
        for query in ("", "?body=10", "?chunked=1&body=100", "?status=204"):
            url = f"http://127.0.0.1:{server.port}/hook/abc{query}"
            answer = await client.post(url, {"Timerd-Attempt": "1"})
            assert answer.status == (204 if "204" in query else 200)
    finally:
        await client.close()
    assert [r.method for r in seen.requests] == ["POST"] * 4
    assert seen.bodies == [b""] * 4
    assert seen.requests[0].headers["User-Agent"] == AGENT
    assert seen.requests[0].headers["Timerd-Attempt"] == "1"
    assert seen.requests[0].headers["Content-Length"] == "0"
    assert seen.requests[0].path == "/hook/abc"
    assert len(seen.peers) == 1  # one keep-alive connection served all four


async def test_status_and_retry_after_come_back(plain_server: tuple[TestServer, Seen]) -> None:
    server, _ = plain_server
    client = WebhookClient(user_agent=AGENT)
    try:
        answer = await client.post(f"http://127.0.0.1:{server.port}/h?status=429&ra=7", {})
        assert (answer.status, answer.retry_after) == (429, "7")
        big = await client.post(f"http://127.0.0.1:{server.port}/h?status=500&body=200000", {})
        assert big.status == 500  # a big body is not read; the connection is dropped instead
        again = await client.post(f"http://127.0.0.1:{server.port}/h", {})
        assert again.status == 200
    finally:
        await client.close()


async def test_credentials_in_the_url_become_basic_auth(
    plain_server: tuple[TestServer, Seen],
) -> None:
    server, seen = plain_server
    client = WebhookClient(user_agent=AGENT)
    try:
        await client.post(f"http://us%40er:p%3Ass@127.0.0.1:{server.port}/h", {})
    finally:
        await client.close()
    assert seen.requests[0].headers["Authorization"] == "Basic dXNAZXI6cDpzcw=="


async def test_https_with_a_verified_certificate() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    trusting = WebhookClient(user_agent=AGENT, ssl_context=client_ctx)
    untrusting = WebhookClient(user_agent=AGENT)
    try:
        answer = await trusting.post(f"https://localhost:{port}/hook/id", {})
        assert answer.status == 202
        with pytest.raises(ssl.SSLError):
            await untrusting.post(f"https://localhost:{port}/hook/id", {})
    finally:
        await trusting.close()
        await untrusting.close()
        await runner.cleanup()


async def test_a_receiver_that_closes_without_answering() -> None:
    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = WebhookClient(user_agent=AGENT)
    try:
        with pytest.raises(ReceiverClosed):
            await client.post(f"http://127.0.0.1:{port}/h", {})
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
