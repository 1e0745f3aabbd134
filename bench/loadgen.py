"""A lean keep-alive HTTP/1.1 load generator on asyncio protocols (uvloop).

A pure-Python aiohttp client tops out near 10k req/s on one core here, about the rate of the
servers under test, so it would measure itself. This client pre-encodes every request, sends
the next one straight from `data_received` (no task switch per request) and parses only the
status line and `Content-Length` (or chunked framing), which leaves it headroom; `Result`
carries its own CPU use so each report can show that.

Three modes, all bounded in count and time:
- closed loop for a fixed duration (`run_for`), requests drawn in turn from a list;
- a fixed list, each request sent once (`run_list`);
- open loop at a fixed rate (`run_rate`); latency counts from the *scheduled* send time, so
  a stalled server cannot hide its stall by slowing the client (coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from stats import percentile

MAX_RECONNECTS = 1_000
"""Bound on reconnections per run: a server that keeps closing sockets ends the run."""


def encode_request(
    method: str, path: str, host: str, body: bytes = b"", content_type: str = "application/json"
) -> bytes:
    """Return one complete keep-alive HTTP/1.1 request as bytes."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body or method in ("POST", "PUT", "PATCH"):
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def post_json(path: str, host: str, obj: Any) -> bytes:
    """Encode a JSON POST."""
    return encode_request("POST", path, host, json.dumps(obj, separators=(",", ":")).encode())


@dataclass
class Result:
    """What one load run measured: per-request latency, status counts and client CPU."""

    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        """Successful (2xx) responses per second of wall time."""
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def client_cpu(self) -> float:
        """The client's CPU use as a fraction of one core (1.0 = saturated)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Return the figures every report carries."""
        lat = sorted(self.latencies_s)
        return {
            "ok": self.ok,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "wall_s": round(self.wall_s, 3),
            "rate": round(self.rate, 1),
            "p50_ms": round(percentile(lat, 50) * 1e3, 3),
            "p99_ms": round(percentile(lat, 99) * 1e3, 3),
            "max_ms": round(lat[-1] * 1e3, 3) if lat else 0.0,
            "loadgen_cpu": round(self.client_cpu, 3),
        }


class _Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: _Gen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.started = 0.0
        self.busy = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, started: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.started = started
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.busy:
            parsed = _parse_response(self.buf)
            if parsed is None:
                return
            status, consumed, body, close = parsed
            del self.buf[:consumed]
            self.busy = False
            self.gen.done(self, status, body)
            if close and self.transport is not None:
                self.transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        self.gen.lost(self)


def _parse_response(buf: bytearray) -> tuple[int, int, bytes, bool] | None:
    """Return (status, bytes consumed, body, connection-close) once a whole response is in."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    start = end + 4
    close = b"\r\nconnection: close" in head
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        if len(buf) < start + length:
            return None
        return status, start + length, bytes(buf[start : start + length]), close
    if b"\r\ntransfer-encoding: chunked" in head:
        return _parse_chunked(buf, start, status, close)
    return status, start, b"", close


def _parse_chunked(
    buf: bytearray, pos: int, status: int, close: bool
) -> tuple[int, int, bytes, bool] | None:
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
        if size == 0:
            return status, pos, bytes(body), close


class _Gen:
    """Shared state of one run: where requests come from and where results go."""

    def __init__(
        self,
        host: str,
        port: int,
        next_request: Callable[[], bytes | None],
        keep_bodies: bool,
        deadline: float,
    ) -> None:
        self.host, self.port = host, port
        self.next_request = next_request
        self.keep_bodies = keep_bodies
        self.deadline = deadline
        self.result = Result()
        self.conns: list[_Conn] = []
        self.idle: deque[_Conn] = deque()
        self.backlog: deque[tuple[bytes, float]] = deque()
        self.open_loop = False
        self.stopping = False
        self.reconnects = 0
        self.finished = asyncio.get_running_loop().create_future()

    async def connect(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
            self.conns.append(conn)

    def done(self, conn: _Conn, status: int, body: bytes) -> None:
        now = time.perf_counter()
        res = self.result
        if now <= self.deadline:
            res.statuses[status] = res.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                res.ok += 1
                res.latencies_s.append(now - conn.started)
                if self.keep_bodies:
                    res.bodies.append(body)
            else:
                res.errors += 1
        self.feed(conn)

    def feed(self, conn: _Conn) -> None:
        """Give `conn` its next request, or park it."""
        if self.stopping or conn.transport is None:
            return
        if self.open_loop:
            if self.backlog:
                request, scheduled = self.backlog.popleft()
                conn.send(request, scheduled)
            else:
                self.idle.append(conn)
            return
        request = self.next_request() if time.perf_counter() < self.deadline else None
        if request is None:
            self.idle.append(conn)
            if len(self.idle) >= sum(1 for c in self.conns if c.transport is not None):
                self._finish()
            return
        conn.send(request, time.perf_counter())

    def lost(self, conn: _Conn) -> None:
        if self.stopping:  # closed by us at the end: an unanswered request is not an error
            conn.busy = False
            return
        if conn.busy:
            self.result.errors += 1
            conn.busy = False
        if self.reconnects < MAX_RECONNECTS:
            self.reconnects += 1
            asyncio.get_running_loop().create_task(self._replace(conn))
        elif all(c.transport is None for c in self.conns):
            self._finish()

    async def _replace(self, old: _Conn) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError:
            self.result.errors += 1
            if all(c.transport is None for c in self.conns):
                self._finish()
            return
        self.conns[self.conns.index(old)] = conn
        self.feed(conn)

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    async def close(self) -> None:
        self.stopping = True
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()
        for conn in self.conns:
            await conn.closed
        self.result.errors += len(self.backlog)


async def run_for(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    duration_s: float,
    keep_bodies: bool = False,
) -> Result:
    """Closed loop: `connections` clients send `requests` in turn for `duration_s`."""
    counter = iter(range(10**9))

    def next_request() -> bytes:
        return requests[next(counter) % len(requests)]

    return await _closed_loop(host, port, next_request, connections, duration_s, keep_bodies)


async def run_list(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    timeout_s: float,
    keep_bodies: bool = False,
) -> Result:
    """Send each of `requests` once over `connections` clients; give up after `timeout_s`."""
    it = iter(requests)

    def next_request() -> bytes | None:
        return next(it, None)

    return await _closed_loop(host, port, next_request, connections, timeout_s, keep_bodies)


async def _closed_loop(
    host: str,
    port: int,
    next_request: Callable[[], bytes | None],
    connections: int,
    duration_s: float,
    keep_bodies: bool,
) -> Result:
    gen = _Gen(host, port, next_request, keep_bodies, time.perf_counter() + duration_s)
    await gen.connect(connections)
    cpu0, t0 = time.process_time(), time.perf_counter()
    gen.deadline = t0 + duration_s
    for conn in gen.conns:
        gen.feed(conn)
    try:
        async with asyncio.timeout(duration_s + 0.5):
            await gen.finished
    except TimeoutError:
        pass
    gen.result.wall_s = min(time.perf_counter(), gen.deadline) - t0
    gen.result.cpu_s = time.process_time() - cpu0
    await gen.close()
    return gen.result


async def run_rate(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    rate: float,
    duration_s: float,
    connections: int = 32,
    drain_s: float = 5.0,
    stop: asyncio.Event | None = None,
) -> Result:
    """Open loop: send `make_request(i)` at `rate` per second for `duration_s`.

    Requests that find no idle connection wait in a backlog; their latency still counts from
    the moment they were due to be sent. Setting `stop` ends the sending early.
    """
    total = int(rate * duration_s)
    gen = _Gen(host, port, lambda: None, False, float("inf"))
    gen.open_loop = True
    await gen.connect(connections)
    gen.idle.extend(gen.conns)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(total):
        if stop is not None and stop.is_set():
            break
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = make_request(i)
        while gen.idle and gen.idle[0].transport is None:
            gen.idle.popleft()
        if gen.idle:
            gen.idle.popleft().send(request, scheduled)
        else:
            gen.backlog.append((request, scheduled))
    for _ in range(int(drain_s / 0.005)):  # bounded wait for the last answers
        if not gen.backlog and not any(c.busy for c in gen.conns):
            break
        await asyncio.sleep(0.005)
    gen.result.wall_s = time.perf_counter() - t0
    gen.result.cpu_s = time.process_time() - cpu0
    await gen.close()
    return gen.result
