"""The polling design most timer services start from, as a reference to measure timerd against.

Each create is one INSERT and one COMMIT. A controller wakes every 500 ms, selects the due
rows, marks them in flight, posts them all, and marks them done. Simple and durable, but a
timer waits up to one poll interval plus the time to post everything due before it, and every
create pays a full fsync of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

import aiohttp
import aiosqlite
from aiohttp import web
from common import LIMITS, arguments, created, problem, read_create, run

from timerd.errors import TimerdError
from timerd.validation import parse_batch

POLL_S = 0.5
BATCH = 10_000
"""Most due rows one poll takes; a full batch makes the controller poll again at once."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS timers (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, fire_at REAL NOT NULL, created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (status, fire_at);
"""

_MARK_IN_FLIGHT = "UPDATE timers SET status = 'in_flight', attempts = attempts + 1 WHERE id = ?"

DB = web.AppKey("db", aiosqlite.Connection)
LOCK = asyncio.Lock()
"""One transaction at a time on the shared connection: each request's INSERT is followed by
its own COMMIT (interleaved statements from two requests would share a commit, or trip
sqlite3's 'API misuse' error)."""


async def create(request: web.Request) -> web.Response:
    spec = await read_create(request)
    if isinstance(spec, web.Response):
        return spec
    timer_id = secrets.token_urlsafe(16)
    db = request.app[DB]
    async with LOCK:
        await db.execute(
            "INSERT INTO timers (id, url, fire_at, created_at) VALUES (?, ?, ?, ?)",
            (timer_id, spec.url, spec.fire_at, time.time()),
        )
        await db.commit()
    return created(timer_id)


async def create_batch(request: web.Request) -> web.Response:
    try:
        specs = parse_batch(
            json.loads(await request.read()), now=time.time(), limits=LIMITS, max_items=1000
        )
    except ValueError:
        return problem(400, "the body is not JSON")
    except TimerdError as exc:
        return problem(exc.status, exc.detail)
    now = time.time()
    rows = [(secrets.token_urlsafe(16), s.url, s.fire_at, now) for s in specs]
    db = request.app[DB]
    async with LOCK:
        await db.executemany(
            "INSERT INTO timers (id, url, fire_at, created_at) VALUES (?, ?, ?, ?)", rows
        )
        await db.commit()
    return web.json_response({"ids": [r[0] for r in rows]}, status=201)


async def get(request: web.Request) -> web.Response:
    db = request.app[DB]
    async with db.execute(
        "SELECT id, url, fire_at, created_at, status, attempts FROM timers WHERE id = ?",
        (request.match_info["id"],),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return problem(404, "no such timer")
    keys = ("id", "url", "fire_at", "created_at", "status", "attempts")
    body: dict[str, Any] = dict(zip(keys, row, strict=True))
    body["time_left"] = max(0, int(-(-(row[2] - time.time()) // 1)))
    return web.json_response(body)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def controller(db: aiosqlite.Connection, session: aiohttp.ClientSession) -> None:
    """Poll every 500 ms: take due rows, mark them in flight, post them, mark them done."""
    while True:
        started = time.monotonic()
        async with db.execute(
            "SELECT id, url, fire_at FROM timers WHERE status = 'pending' AND fire_at <= ? "
            "ORDER BY fire_at LIMIT ?",
            (time.time(), BATCH),
        ) as cursor:
            due = list(await cursor.fetchall())
        if due:
            ids = [(row[0],) for row in due]
            async with LOCK:
                await db.executemany(_MARK_IN_FLIGHT, ids)
                await db.commit()
            outcomes = await asyncio.gather(*(post(session, *row) for row in due))
            done = [
                (("done" if ok else "pending"), row[0])
                for ok, row in zip(outcomes, due, strict=True)
            ]
            async with LOCK:
                await db.executemany("UPDATE timers SET status = ? WHERE id = ?", done)
                await db.commit()
        if len(due) < BATCH:
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - started)))


async def post(session: aiohttp.ClientSession, timer_id: str, url: str, fire_at: float) -> bool:
    """Deliver one webhook; True when the receiver answered 2xx."""
    headers = {"Timerd-Fire-At": repr(fire_at), "Timerd-Attempt": "1"}
    try:
        async with session.post(f"{url.rstrip('/')}/{timer_id}", headers=headers) as resp:
            return 200 <= resp.status < 300
    except (aiohttp.ClientError, TimeoutError):
        return False


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    app = web.Application()

    async def lifecycle(app: web.Application) -> Any:
        db = await aiosqlite.connect(args.db)
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute(f"PRAGMA synchronous = {args.synchronous}")
        await db.executescript(SCHEMA)
        await db.commit()
        app[DB] = db
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            timeout=aiohttp.ClientTimeout(total=10),
        )
        task = asyncio.create_task(controller(db, session))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await session.close()
        await db.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/timers", create)
    app.router.add_post("/timers/batch", create_batch)
    app.router.add_get("/timers/{id}", get)
    app.router.add_get("/healthz", healthz)
    run(app, args.host, args.port)


if __name__ == "__main__":
    main()
