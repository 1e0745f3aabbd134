"""The status page, a timer's page and the API docs page, with the JSON views behind them.

`pages` serves the HTML and static files (strict CSP, nothing from elsewhere), `views` the
read-only JSON the pages show plus "fire again" for many failed timers, `queries` the
bounded reads behind them, `schema` their OpenAPI path items.
"""

from __future__ import annotations

from aiohttp import web

from timerd.api.webui.pages import add_page_routes, is_public_path, load_assets
from timerd.api.webui.schema import ui_paths
from timerd.api.webui.views import add_view_routes
from timerd.browse import newest_timers, next_timers

__all__ = [
    "add_ui_routes",
    "is_public_path",
    "load_assets",
    "newest_timers",
    "next_timers",
    "ui_paths",
]


def add_ui_routes(app: web.Application) -> None:
    """Register the pages, their static files and their JSON views."""
    add_page_routes(app)
    add_view_routes(app)
