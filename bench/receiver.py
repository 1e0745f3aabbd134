"""A local webhook receiver that timestamps every arrival and counts duplicates.

It is a raw asyncio protocol, not aiohttp: a 20,000-timer burst arrives at well over 10k
requests/s, near what an aiohttp server does on one core, and the receiver must not be
what limits the daemon under test. It parses only the request line and three headers.

Run standalone (`python bench/receiver.py --port 0`), it prints `listening on URL` and serves:
- `POST /hook/<id>` (any path: the id is its last segment): answers 200 with no body;
- `GET /_summary`: JSON with counts, duplicates, first/last arrival and lateness percentiles,
  where lateness = arrival wall time - the `Timerd-Fire-At` header.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import time
from typing import Any, cast

from stats import percentile

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Log:
    """Arrivals by id: [(arrival epoch s, fire_at epoch s or nan, attempt), ...]."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[tuple[float, float, int]]] = {}
        self.total = 0
        self.by_node: dict[str, int] = {}
        """Arrivals by the sender's Timerd-Node header: how the work spread over nodes."""

    def add(
        self, timer_id: str, arrival: float, fire_at: float, attempt: int, node: str = ""
    ) -> None:
        self.total += 1
        self.arrivals.setdefault(timer_id, []).append((arrival, fire_at, attempt))
        if node:
            self.by_node[node] = self.by_node.get(node, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Count, duplicates and lateness of each id's first arrival, in milliseconds."""
        firsts = [entries[0] for entries in self.arrivals.values()]
        lateness = sorted(a - f for a, f, _ in firsts if not math.isnan(f))
        times = sorted(a for a, _, _ in firsts)
        last_any = max((e[-1][0] for e in self.arrivals.values()), default=0.0)
        return {
            "received": self.total,
            "unique": len(self.arrivals),
            "duplicates": self.total - len(self.arrivals),
            "retried": sum(1 for a in firsts if a[2] > 1),
            "first_arrival": times[0] if times else 0.0,
            "last_arrival": last_any,
            "late_p50_ms": round(percentile(lateness, 50) * 1e3, 3),
            "late_p99_ms": round(percentile(lateness, 99) * 1e3, 3),
            "late_max_ms": round(lateness[-1] * 1e3, 3) if lateness else 0.0,
            "late_min_ms": round(lateness[0] * 1e3, 3) if lateness else 0.0,
            "by_node": dict(sorted(self.by_node.items())),
        }


class _Server(asyncio.Protocol):
    def __init__(self, log: Log) -> None:
        self.log = log
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        arrival = time.time()
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            self._answer(lines[0], headers, arrival)

    def _answer(self, request_line: str, headers: dict[str, str], arrival: float) -> None:
        assert self.transport is not None
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and path == "/_summary":
            body = json.dumps(self.log.summary()).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            if headers.get("connection", "").lower() == "close":
                self.transport.close()
            return
        timer_id = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        try:
            fire_at = float(headers.get("timerd-fire-at", "nan"))
            attempt = int(headers.get("timerd-attempt", "1"))
        except ValueError:
            fire_at, attempt = float("nan"), 1
        self.log.add(timer_id, arrival, fire_at, attempt, headers.get("timerd-node", ""))
        self.transport.write(_OK)


async def serve(host: str, port: int) -> tuple[asyncio.Server, Log]:
    """Start a receiver on the running loop; return the server and its log."""
    log = Log()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(log), host, port, backlog=4096)
    return server, log


async def _main(port: int, max_s: float) -> None:
    server, _ = await serve("127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max_s):
            await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600, help="exit after this long")
    args = parser.parse_args()
    import uvloop

    uvloop.run(_main(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
