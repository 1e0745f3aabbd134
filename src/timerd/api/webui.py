"""The status page (`/`, `/ui`) and the API docs page (`/docs`), served from files in the package.

The pages are plain HTML, JS and CSS under `timerd/static/`, read once when the app is built
and served with a strict Content-Security-Policy: nothing is loaded from anywhere but this
daemon. The pages talk to the ordinary API, plus one read-only summary, `/ui/summary.json`,
that gathers what the status page shows in one request.

The HTML and assets hold no data, so `is_public_path` tells an auth layer it may serve them
without a token; the pages send `Authorization: Bearer <token>` on every API call themselves.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from timerd import __version__
from timerd.api.app_keys import SERVICE
from timerd.metrics_summary import parse_figures
from timerd.models import LIVE_STATUSES, Status, Timer

if TYPE_CHECKING:
    from timerd.service import TimerService

STATIC_PREFIX = "/ui/static/"
PUBLIC_PATHS = frozenset({"/", "/ui", "/docs"})
NEXT_COUNT = 10
RECENT_COUNT = 8
COUNTS_EVERY_S = 2.0
_SCAN = 200
_SPANS_S = (60.0, 3600.0, 86_400.0, 30 * 86_400.0)
_BISECT_STEPS = 64  # enough to split any float range down to adjacent values
_ASSET_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css|svg)")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_public_path(path: str) -> bool:
    """Tell whether `path` is a page or asset that holds no data (safe to serve without auth)."""
    return path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX)


def load_assets() -> dict[str, bytes]:
    """Return every file of `timerd/static` by name."""
    folder = resources.files("timerd.api").joinpath("static")
    return {item.name: item.read_bytes() for item in folder.iterdir() if item.is_file()}


def add_ui_routes(app: web.Application) -> None:
    """Register the status page, the docs page, their assets and the summary."""
    assets = load_assets()

    def page(name: str) -> web.Response:
        return web.Response(
            body=assets[name], content_type="text/html", charset="utf-8", headers=_HEADERS
        )

    async def status_page(request: web.Request) -> web.Response:
        """GET / and /ui: the status page."""
        return page("status.html")

    async def docs_page(request: web.Request) -> web.Response:
        """GET /docs: the interactive API docs."""
        return page("docs.html")

    async def asset(request: web.Request) -> web.Response:
        """GET /ui/static/<name>: a script, stylesheet or icon of the pages."""
        name = request.match_info["name"]
        if not _ASSET_RE.fullmatch(name) or name not in assets:
            raise web.HTTPNotFound()
        suffix = name[name.rindex(".") :]
        return web.Response(
            body=assets[name], content_type=_TYPES[suffix], charset="utf-8", headers=_HEADERS
        )

    app.router.add_get("/", status_page, allow_head=False)
    app.router.add_get("/ui", status_page, allow_head=False)
    app.router.add_get("/docs", docs_page, allow_head=False)
    app.router.add_get("/ui/summary.json", summary, allow_head=False)
    app.router.add_get(STATIC_PREFIX + "{name}", asset, allow_head=False)


async def summary(request: web.Request) -> web.Response:
    """GET /ui/summary.json: counts, the next timers, recent outcomes and headline figures."""
    service = request.app[SERVICE]
    now = service.clock.now()
    counts = await _counts(service)
    await service.refresh_gauges()
    figures = parse_figures(service.metrics.render().decode()).to_json()
    figures["timers"] = counts
    body = {
        "now": now,
        "version": __version__,
        "counts": counts,
        "next": [t.to_json(now) for t in await next_timers(service, NEXT_COUNT)],
        "recent_fired": [
            t.to_json(now) for t in await newest_timers(service, Status.FIRED, RECENT_COUNT, now)
        ],
        "recent_failed": [
            t.to_json(now) for t in await newest_timers(service, Status.FAILED, RECENT_COUNT, now)
        ],
        "figures": figures,
    }
    return web.Response(
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _counts(service: TimerService) -> dict[str, int]:
    counts = await service.status_counts(COUNTS_EVERY_S)  # shared with /metrics
    return {status.value: counts.get(status, 0) for status in Status}


async def next_timers(service: TimerService, count: int) -> list[Timer]:
    """Return the `count` live timers due soonest (pending or retrying), soonest first."""
    live = await service.list_timers(LIVE_STATUSES, count, None)
    live.sort(key=lambda t: (t.next_at if t.next_at is not None else t.fire_at, t.id))
    return live[:count]


async def newest_timers(
    service: TimerService, status: Status, count: int, now: float
) -> list[Timer]:
    """Return up to `count` timers of `status` with the latest due times, newest first.

    The store pages by due time, oldest first, so this looks back from `now` over a window
    that widens until it holds `count` timers, and narrows (bisecting) when a window holds
    more than one page: a few bounded index reads, never a scan of the table.
    """
    best: list[Timer] = []
    ok_lo = now  # from here on, the page was complete (assumed empty at first)
    full: tuple[float, list[Timer]] | None = None  # a lower bound with more than a page after it
    for span_s in (*_SPANS_S, None):
        lo = None if span_s is None else now - span_s
        page = await service.list_timers({status}, _SCAN, None if lo is None else (lo, ""))
        if len(page) < _SCAN:
            best = page
            if len(page) >= count or lo is None:
                return best[::-1][:count]
            ok_lo = lo
            continue
        # more than a page after `lo` (with no `lo`, after the oldest row): narrow it down
        full = (page[0].fire_at if lo is None else lo, page)
        break
    if full is None:
        return best[::-1][:count]
    full_lo, full_page = full
    for _ in range(_BISECT_STEPS):
        mid = (full_lo + ok_lo) / 2
        if not full_lo < mid < ok_lo:
            break
        page = await service.list_timers({status}, _SCAN, (mid, ""))
        if len(page) < _SCAN:
            best, ok_lo = page, mid
            if len(page) >= count:
                break
        else:
            full_lo, full_page = mid, page
    if not best:
        best = full_page  # more than a page at one instant: these are as recent as any
    return best[::-1][:count]


def _html(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["ui"],
        "responses": {"200": {"description": "An HTML page", "content": {"text/html": {}}}},
    }


def ui_paths() -> dict[str, Any]:
    """Return the OpenAPI path items of the pages, their assets and the summary."""
    summary_schema: dict[str, Any] = {
        "type": "object",
        "required": ["now", "counts", "next", "recent_fired", "recent_failed", "figures"],
        "properties": {
            "now": {"type": "number", "description": "The daemon's clock, epoch seconds."},
            "version": {"type": "string"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "next": {"type": "array", "items": {"$ref": "#/components/schemas/Timer"}},
            "recent_fired": {"type": "array", "items": {"$ref": "#/components/schemas/Timer"}},
            "recent_failed": {"type": "array", "items": {"$ref": "#/components/schemas/Timer"}},
            "figures": {"type": "object", "description": "The figures of `timerd stats --json`."},
        },
    }
    return {
        "/": {"get": _html("The status page")},
        "/ui": {"get": _html("The status page")},
        "/docs": {"get": _html("These API docs")},
        "/ui/summary.json": {
            "get": {
                "summary": "What the status page shows, in one read",
                "tags": ["ui"],
                "responses": {
                    "200": {
                        "description": "Counts, the next timers, recent outcomes, figures",
                        "content": {"application/json": {"schema": summary_schema}},
                    }
                },
            }
        },
        STATIC_PREFIX + "{name}": {
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "summary": "A script or stylesheet of the pages",
                "tags": ["ui"],
                "responses": {
                    "200": {"description": "The file"},
                    "404": {"$ref": "#/components/responses/Problem"},
                },
            },
        },
    }
