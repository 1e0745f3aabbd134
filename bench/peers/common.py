"""What the reference peers share: the command line, the validation call and problem bodies.

Each peer validates with timerd's own `parse_create`, so the comparison measures storage and
scheduling designs, not differences in how strictly a body is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

import uvloop
from aiohttp import web

from timerd.errors import TimerdError
from timerd.validation import BodyLimits, CreateSpec, parse_create

LIMITS = BodyLimits(max_delay_s=315_576_000, max_url_length=2048)
"""timerd's defaults: ten years, 2048 characters."""


def arguments(description: str) -> argparse.Namespace:
    """Parse the command line every peer shares: `--host --port --db --synchronous`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", default="peer.db")
    parser.add_argument(
        "--synchronous", default="full", help="SQLite synchronous mode (timerd's default: full)"
    )
    parser.add_argument("--no-grace", action="store_true", help="apscheduler: grace None")
    return parser.parse_args()


def problem(status: int, detail: str) -> web.Response:
    """A small application/problem+json answer."""
    body = {"type": "about:blank", "title": "error", "status": status, "detail": detail}
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/problem+json"
    )


async def read_create(request: web.Request) -> CreateSpec | web.Response:
    """Validate a `POST /timers` request as SPEC.md says; return the spec or the rejection."""
    if request.content_type != "application/json":
        return problem(415, "send Content-Type: application/json")
    raw = await request.read()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return problem(400, "the body is not JSON")
    try:
        return parse_create(body, now=time.time(), limits=LIMITS)
    except TimerdError as exc:
        return problem(exc.status, exc.detail)


def created(timer_id: str) -> web.Response:
    """The 201 answer of a create."""
    return web.Response(
        status=201,
        body=b'{"id":"' + timer_id.encode() + b'"}',
        content_type="application/json",
        headers={"Location": f"/timers/{timer_id}"},
    )


def run(app: web.Application, host: str, port: int) -> None:
    """Serve `app` on uvloop and print the `listening on` line once it answers."""

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=4096).start()
        bound = runner.addresses[0][1]
        print(f"listening on http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    uvloop.run(main())
