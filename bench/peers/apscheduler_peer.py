"""APScheduler 3 as a timer service: the design of the Flask + APScheduler seed, for comparison.

One `date` job per timer in an `SQLAlchemyJobStore` on SQLite, run by `AsyncIOScheduler`.
With default settings a job that starts more than `misfire_grace_time` (1 s) late is skipped
with only a log line: under a burst most timers are silently dropped. `--no-grace` sets
`misfire_grace_time=None` (run however late). `GET /_stats` counts missed and failed jobs so
the harness can report the drops.

Needs the bench-only packages (apscheduler, sqlalchemy) from bench/requirements.txt.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from common import arguments, created, problem, read_create, run

STATS = {"missed": 0, "errors": 0, "fired": 0}
SESSION: list[aiohttp.ClientSession] = []
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)


async def fire(timer_id: str, url: str, fire_at: float) -> None:
    """The job: post the webhook once (APScheduler has no retries of its own)."""
    headers = {"Timerd-Fire-At": repr(fire_at), "Timerd-Attempt": "1"}
    async with SESSION[0].post(f"{url.rstrip('/')}/{timer_id}", headers=headers) as resp:
        STATS["fired"] += 1
        resp.raise_for_status()


def on_event(event: JobEvent) -> None:
    STATS["missed" if event.code == EVENT_JOB_MISSED else "errors"] += 1


async def create(request: web.Request) -> web.Response:
    spec = await read_create(request)
    if isinstance(spec, web.Response):
        return spec
    timer_id = secrets.token_urlsafe(16)
    request.app[SCHEDULER].add_job(
        fire,
        "date",
        run_date=datetime.fromtimestamp(spec.fire_at, tz=UTC),
        args=[timer_id, spec.url, spec.fire_at],
        id=timer_id,
    )
    return created(timer_id)


async def get(request: web.Request) -> web.Response:
    job = request.app[SCHEDULER].get_job(request.match_info["id"])
    if job is None:
        return problem(404, "no such timer (or it already ran)")
    timer_id, url, fire_at = job.args
    return web.json_response({"id": timer_id, "url": url, "fire_at": fire_at, "status": "pending"})


async def stats(_: web.Request) -> web.Response:
    return web.json_response(STATS)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    app = web.Application()

    async def lifecycle(app: web.Application) -> Any:
        job_defaults = {"misfire_grace_time": None} if args.no_grace else {}
        scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{args.db}")},
            job_defaults=job_defaults,
            event_loop=asyncio.get_running_loop(),
        )
        scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        SESSION.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)))
        scheduler.start()
        app[SCHEDULER] = scheduler
        yield
        scheduler.shutdown(wait=False)
        await SESSION[0].close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/timers", create)
    app.router.add_get("/timers/{id}", get)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/healthz", healthz)
    run(app, args.host, args.port)


if __name__ == "__main__":
    main()
