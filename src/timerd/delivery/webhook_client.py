"""A lean HTTP/1.1 client for webhooks: keep-alive pools per origin, a POST with an empty body.

Why not aiohttp's ClientSession: its CPU per request capped a burst on the daemon's one core
(BENCHMARKS.md has the figures). A webhook needs far less of HTTP: one method, no body, no
redirects, no cookies, and of the answer only the status, `Retry-After`, and enough framing
to reuse the connection. This client does that on asyncio protocols and still takes DNS from
an aiohttp resolver, so the outbound policy checks every resolved address. Answers are
framed in webhook_conn (by httptools), idle connections kept in webhook_pool.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from aiohttp.abc import AbstractResolver

from timerd.delivery.webhook_conn import Connection, HttpAnswer, ReceiverClosed
from timerd.delivery.webhook_pool import IdlePool, Origin
from timerd.hostnames import resolver_name
from timerd.models import append_segment

_SAFE = "/%:@!$&'()*+,;=-._~?"
_TARGET_CACHE = 4096


class NoAddress(ConnectionError):
    """The receiver's host name resolved to no address at all."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolved to no address")


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str  # IDNA-encoded, no brackets
    port: int
    host_header: str
    path: str  # percent-encoded
    query: str  # percent-encoded, without "?"
    authorization: str | None

    def request_target(self, segment: str | None) -> str:
        """Return path?query, with `segment` appended as a new last path segment."""
        path = self.path if segment is None else append_segment(self.path, segment)
        return f"{path}?{self.query}" if self.query else path

    @property
    def origin(self) -> Origin:
        return self.scheme, self.host, self.port


def _parse_target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url[:100]}")
    host = resolver_name(parts.hostname)  # the name the outbound policy judged
    port = parts.port or (443 if parts.scheme == "https" else 80)
    default_port = port == (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if default_port else f"{shown}:{port}"
    path = quote(parts.path or "/", safe=_SAFE)
    query = quote(parts.query, safe=_SAFE)
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return _Target(parts.scheme, host, port, host_header, path, query, authorization)


class WebhookClient:
    """Posts empty-bodied requests over pooled keep-alive connections."""

    def __init__(
        self,
        *,
        user_agent: str,
        resolver: AbstractResolver | None = None,
        idle_timeout_s: float = 30.0,
        max_idle: int = 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._resolver = resolver
        self.idle = IdlePool(max_idle=max_idle, idle_timeout_s=idle_timeout_s)  # tests read it
        self._ssl = ssl_context  # None: the system's trust store, made on first use
        self._targets: dict[str, _Target] = {}  # parsed base URLs: many timers share one

    async def post(
        self,
        url: str,
        headers: dict[str, str],
        segment: str | None = None,
        deadline: float | None = None,
    ) -> HttpAnswer:
        """POST `url` (plus `segment` as a last path segment) with an empty body.

        Raises OSError (ConnectionError among them) for connection failures, ValueError for
        a URL that cannot be requested, whatever the resolver raises, and TimeoutError once
        the event loop's clock passes `deadline` (connecting included). A cancelled or
        timed-out request drops its connection.
        """
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _TARGET_CACHE:
                self._targets.clear()
            target = self._targets[url] = _parse_target(url)
        request = self._request_bytes(target, headers, segment)
        conn, reused = self.idle.take(target.origin), True
        if conn is None:
            conn, reused = await self._connect(target, deadline), False
        try:
            answer = await conn.send(request, deadline)
        except ReceiverClosed:
            conn.abort()
            if not reused or conn.answered_bytes:
                raise
            # an idle connection the receiver had just closed: the request never reached
            # it, so one fresh connection is the honest retry
            conn = await self._connect(target, deadline)
            try:
                answer = await conn.send(request, deadline)
            except BaseException:
                conn.abort()
                raise
        except BaseException:
            conn.abort()  # timed out or cancelled mid-answer: the stream is unusable
            raise
        self._release(target.origin, conn)
        return answer

    def _request_bytes(
        self, target: _Target, headers: dict[str, str], segment: str | None
    ) -> bytes:
        lines = [
            f"POST {target.request_target(segment)} HTTP/1.1",
            f"Host: {target.host_header}",
            f"User-Agent: {self._user_agent}",
            "Content-Length: 0",
        ]
        if target.authorization:
            lines.append(f"Authorization: {target.authorization}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _release(self, origin: Origin, conn: Connection) -> None:
        if not conn.reusable or conn.closed:
            conn.close()  # still skipping a body, or told to close: not worth keeping
            return
        self.idle.put(origin, conn)

    async def _connect(self, target: _Target, deadline: float | None) -> Connection:
        async with asyncio.timeout_at(deadline):  # rare: connections are kept alive
            return await self._open(target)

    async def _open(self, target: _Target) -> Connection:
        loop = asyncio.get_running_loop()
        addresses = await self._addresses(target)
        context = self._ssl_context() if target.scheme == "https" else None
        last: OSError | None = None
        for family, address in addresses:
            try:
                _, conn = await loop.create_connection(
                    Connection,
                    address,
                    target.port,
                    family=family,
                    ssl=context,
                    server_hostname=target.host if context else None,
                )
            except OSError as exc:
                last = exc
                continue
            return conn
        if last is None:  # the resolver answered with no address at all
            raise NoAddress(target.host)
        raise last

    async def _addresses(self, target: _Target) -> list[tuple[int, str]]:
        with contextlib.suppress(ValueError):
            literal = ipaddress.ip_address(target.host)
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            if self._resolver is None:
                return [(family, target.host)]
        if self._resolver is not None:
            results = await self._resolver.resolve(target.host, target.port, socket.AF_UNSPEC)
            return [(int(r["family"]), str(r["host"])) for r in results]
        infos = await asyncio.get_running_loop().getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM
        )
        return [(int(info[0]), str(info[4][0])) for info in infos]

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def close(self) -> None:
        """Close the idle connections (busy ones close with their request); idempotent."""
        self.idle.close()
        await asyncio.sleep(0)  # let the transports run their close callbacks
