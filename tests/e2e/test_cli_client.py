"""The CLI's HTTP client against real local servers: the token stays home, odd answers are one line.

Issue 14 item 9 (the token reached an HTTP_PROXY and a redirect's target; an empty body crashed)
and issue 16 item 8 (HOST:PORT addresses, the connection-refused hint, servers that are not
timerd). Every check runs the real `timerd` CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import AiohttpServer, Hit, Receiver
from tests.e2e.conftest import CliRunner, DaemonStarter

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-token-for-the-cli-client-tests"
Respond = Callable[[Hit], Awaitable[web.StreamResponse]]


async def _server(aiohttp_server: AiohttpServer, respond: Respond | None = None) -> Receiver:
    """A real server on 127.0.0.1 recording every request it gets, answering with `respond`."""
    rec = Receiver(respond=respond)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    rec.url = str(server.make_url("")).rstrip("/")
    return rec


class _Proxy:
    """A TCP server standing in for an HTTP proxy: it records what it is sent, answers 502."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        self.received.append(data)
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


def _proxy_env(proxy: str) -> dict[str, str]:
    env = {"TIMERD_TOKEN": TOKEN, "NO_PROXY": "", "no_proxy": ""}
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        env[name] = proxy
    return env


async def test_a_loopback_daemon_is_never_reached_through_http_proxy(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "x.db", env={"TIMERD_TOKEN": TOKEN})
    async with _Proxy() as proxy:
        env = _proxy_env(proxy.url)
        added = (await cli("add", "http://127.0.0.1:9/h", "--in", "1h", "--addr", d.url,
                           env_extra=env)).ok()  # fmt: skip
        listed = (await cli("list", "--json", "--addr", d.url, env_extra=env)).ok().json()
        assert [r["id"] for r in listed] == [added.stdout.strip()]
        # localhost is loopback too
        port = d.url.rsplit(":", 1)[1]
        (await cli("list", "--addr", f"localhost:{port}", env_extra=env)).ok()
        assert proxy.received == []


async def test_a_remote_daemon_still_goes_through_the_configured_proxy(cli: CliRunner) -> None:
    async with _Proxy() as proxy:
        env = _proxy_env(proxy.url)
        line = (await cli("list", "--addr", "timerd.example:8000", env_extra=env)).one_error_line()
        assert len(proxy.received) == 1
        assert proxy.received[0].startswith(b"GET http://timerd.example:8000/timers?")
        assert "did not answer like timerd" in line


async def test_a_redirect_is_not_followed_and_the_token_stays_home(
    aiohttp_server: AiohttpServer, cli: CliRunner
) -> None:
    elsewhere = await _server(aiohttp_server)

    async def redirect(hit: Hit) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": elsewhere.url + hit.path})

    first = await _server(aiohttp_server, redirect)
    env = {"TIMERD_TOKEN": TOKEN}
    for args in (("list",), ("show", "abc"), ("add", "http://127.0.0.1:9/h", "--in", "1m")):
        line = (await cli(*args, "--addr", first.url, env_extra=env)).one_error_line()
        assert "redirects (302 to " in line, line
        assert first.url in line
    assert len(first.hits) == 3
    assert first.hits[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert elsewhere.hits == [], "the token followed a redirect to another origin"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (200, "application/json", b"", "200 with an empty body"),
        (200, "application/json", b"<html>hi</html>", "200 with a body that is not JSON"),
        (200, "text/html", b"<html>hi</html>", "200 with text/html, not JSON"),
        (200, "application/json", b"[1, 2]", "without"),
        (404, "text/html", b"<h1>Not Found</h1>", "404 Not Found with text/html"),
        (500, "text/plain", b"boom", "500 Internal Server Error with text/plain"),
    ],
    ids=["empty 200", "non-JSON 200", "HTML 200", "JSON of another shape", "HTML 404", "500"],
)
async def test_a_server_that_is_not_timerd_is_named_in_one_line(
    aiohttp_server: AiohttpServer,
    cli: CliRunner,
    status: int,
    content_type: str,
    body: bytes,
    expected: str,
) -> None:
    async def answer(hit: Hit) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    other = await _server(aiohttp_server, answer)
    for args in (("list",), ("show", "abc"), ("attempts", "abc"), ("cancel", "abc")):
        line = (await cli(*args, "--addr", other.url)).one_error_line()
        assert line.startswith(f"timerd: error: {other.url} did not answer like timerd"), line
        assert expected in line, line


async def test_an_addr_without_scheme_means_http(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "x.db")
    bare = d.url.removeprefix("http://")
    added = (await cli("add", "http://127.0.0.1:9/h", "--in", "1h", "--addr", bare)).ok()
    shown = (await cli("show", added.stdout.strip(), "--json", "--addr", bare)).ok().json()
    assert shown["status"] == "pending"
    listed = (await cli("list", "--json", env_extra={"TIMERD_ADDR": bare + "/"})).ok().json()
    assert [r["id"] for r in listed] == [shown["id"]]


async def test_connection_refused_says_what_to_check(cli: CliRunner) -> None:
    line = (await cli("list", "--addr", "127.0.0.1:1")).one_error_line()
    assert line == (
        "timerd: error: cannot reach timerd at http://127.0.0.1:1: connection refused; "
        "is `timerd serve` running? (--addr, TIMERD_ADDR)"
    )


@pytest.mark.parametrize("addr", ["ftp://127.0.0.1:8000", "http://", "127.0.0.1:port"])
async def test_an_addr_that_is_no_address_is_a_usage_error(cli: CliRunner, addr: str) -> None:
    line = (await cli("list", "--addr", addr)).one_error_line(rc=2)
    assert "--addr" in line
    assert "is not an address like http://127.0.0.1:8000" in line


async def test_errors_from_a_daemon_name_it(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "x.db")
    line = (await cli("cancel", "NoSuchTimer0000000000", "--addr", d.url)).one_error_line()
    assert line.endswith(f"(timerd at {d.url})"), line
