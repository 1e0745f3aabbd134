"""The HTML pages and their static files, served from `timerd/api/static/` under a strict CSP.

Nothing is loaded from anywhere but this daemon: the OpenAPI viewer of the docs page is a
pinned bundle vendored under `static/vendor/` (see the README there). The pages and files
hold no data, so `is_public_path` lets an auth layer serve them without a token; the data
comes from the API and the `/ui/*.json` views, which need it.
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

STATIC_PREFIX = "/ui/static/"
VENDOR_PREFIX = STATIC_PREFIX + "vendor/"
PAGE_PATHS = frozenset({"/", "/ui", "/docs"})
ID_PATTERN = "[A-Za-z0-9_-]{1,64}"
TIMER_PAGE = "/ui/timers/{id:" + ID_PATTERN + "}"
_TIMER_PAGE_RE = re.compile("/ui/timers/" + ID_PATTERN)
_ASSET_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*\.(?:js|css|svg)")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_public_path(path: str) -> bool:
    """Tell whether `path` is a page or asset that holds no data (safe to serve without auth)."""
    return (
        path in PAGE_PATHS
        or path.startswith(STATIC_PREFIX)
        or _TIMER_PAGE_RE.fullmatch(path) is not None
    )


def load_assets(folder: str = "static") -> dict[str, bytes]:
    """Return every file of `timerd/<folder>` (not its subfolders) by name."""
    root = resources.files("timerd.api").joinpath(folder)
    return {item.name: item.read_bytes() for item in root.iterdir() if item.is_file()}


def add_page_routes(app: web.Application) -> None:
    """Register the status page, a timer's page, the docs page and their static files."""
    assets = load_assets()
    vendor = load_assets("static/vendor")

    def page(name: str) -> web.Response:
        return web.Response(
            body=assets[name], content_type="text/html", charset="utf-8", headers=HEADERS
        )

    async def status_page(request: web.Request) -> web.Response:
        """GET / and /ui: the status page."""
        return page("status.html")

    async def timer_page(request: web.Request) -> web.Response:
        """GET /ui/timers/<id>: one timer's page (its data comes from /ui/timers/<id>.json)."""
        return page("timer.html")

    async def docs_page(request: web.Request) -> web.Response:
        """GET /docs: the API docs."""
        return page("docs.html")

    def serve(files: dict[str, bytes], name: str) -> web.Response:
        if not _ASSET_RE.fullmatch(name) or name not in files:
            raise web.HTTPNotFound()
        suffix = name[name.rindex(".") :]
        return web.Response(
            body=files[name], content_type=_TYPES[suffix], charset="utf-8", headers=HEADERS
        )

    async def asset(request: web.Request) -> web.Response:
        """GET /ui/static/<name>: a script, stylesheet or icon of the pages."""
        return serve(assets, request.match_info["name"])

    async def vendored(request: web.Request) -> web.Response:
        """GET /ui/static/vendor/<name>: a pinned third-party file (the OpenAPI viewer)."""
        return serve(vendor, request.match_info["name"])

    app.router.add_get("/", status_page, allow_head=False)
    app.router.add_get("/ui", status_page, allow_head=False)
    app.router.add_get(TIMER_PAGE, timer_page, allow_head=False)
    app.router.add_get("/docs", docs_page, allow_head=False)
    app.router.add_get(STATIC_PREFIX + "{name}", asset, allow_head=False)
    app.router.add_get(VENDOR_PREFIX + "{name}", vendored, allow_head=False)
