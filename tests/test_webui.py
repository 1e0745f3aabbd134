"""The status page, docs page, their assets and /ui/summary.json, over the in-process app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Receiver
from tests.waiting import eventually
from timerd.api.openapi import openapi_document
from timerd.api.webui import is_public_path, load_assets, newest_timers
from timerd.models import Status, Timer
from timerd.store import SqliteStore

Client = TestClient[Any, Any]


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/", "status.js"),
        ("/ui", "status.js"),
        ("/docs", "docs.js"),
        ("/docs", "vendor/swagger-ui-bundle.js"),
        ("/ui/timers/AnyId-123", "timer.js"),
    ],
)
async def test_pages_are_html_with_a_strict_policy(api: Client, path: str, marker: str) -> None:
    resp = await api.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    html = await resp.text()
    assert f"/ui/static/{marker}" in html
    assert "http://" not in html
    assert "https://" not in html


async def test_every_asset_the_pages_name_is_served(api: Client) -> None:
    assets = load_assets()
    names = {"status.html", "docs.html", "timer.html", "status.js", "docs.js", "common.js"}
    assert names | {"timerd.css", "browse.js", "failures.js", "timer.js", "docs.css"} <= set(assets)
    for name in ("status.js", "docs.js", "common.js", "timerd.css", "timer.js", "docs.css"):
        resp = await api.get(f"/ui/static/{name}")
        assert resp.status == 200, name
        assert resp.content_type == ("text/css" if name.endswith(".css") else "text/javascript")
        assert await resp.read() == assets[name]
    for blob in assets.values():
        assert b"//cdn" not in blob
        assert b"unpkg" not in blob


@pytest.mark.parametrize(
    "name", ["nope.js", "status.html", "..%2Fapi.py", "%2E%2E%2F__init__.py", "STATUS.JS"]
)
async def test_unknown_or_sneaky_assets_are_404_problems(api: Client, name: str) -> None:
    resp = await api.get(f"/ui/static/{name}")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


def test_public_paths_are_pages_and_assets_only() -> None:
    for path in ("/", "/ui", "/docs", "/ui/static/status.js", "/ui/timers/abc-_9"):
        assert is_public_path(path)
    for path in (
        "/ui/summary.json",
        "/timers",
        "/metrics",
        "/openapi.json",
        "/uix",
        "/docs/x",
        "/ui/timers.json",
        "/ui/timers/abc.json",
        "/ui/timers/abc/x",
        "/ui/failures.json",
        "/ui/failures/fire",
    ):
        assert not is_public_path(path)


def test_openapi_documents_the_ui_routes() -> None:
    paths = openapi_document()["paths"]
    for path in (
        "/",
        "/ui",
        "/docs",
        "/ui/summary.json",
        "/ui/static/{name}",
        "/ui/static/vendor/{name}",
        "/ui/timers/{id}",
        "/ui/timers/{id}.json",
        "/ui/timers.json",
        "/ui/failures.json",
    ):
        assert paths[path]["get"]["tags"] == ["ui"]


async def test_summary_shows_counts_next_recent_and_figures(
    api: Client, receiver: Receiver
) -> None:
    async def create(**body: Any) -> str:
        resp = await api.post("/timers", json=body)
        assert resp.status == 201
        return str((await resp.json())["id"])

    later = await create(seconds=600, url=receiver.url)
    sooner = await create(seconds=60, url=receiver.url)
    fired = await create(seconds=0, url=receiver.url)
    await receiver.wait_for(1)

    async def is_fired() -> bool:
        return bool((await (await api.get(f"/timers/{fired}")).json())["status"] == "fired")

    await eventually(is_fired, "the due timer to fire", timeout_s=5)

    resp = await api.get("/ui/summary.json")
    assert resp.status == 200
    body = await resp.json()
    assert body["counts"] == {"pending": 2, "retrying": 0, "fired": 1, "failed": 0, "cancelled": 0}
    assert [t["id"] for t in body["next"]] == [sooner, later]
    assert [t["id"] for t in body["recent_fired"]] == [fired]
    assert body["recent_failed"] == []
    assert body["nodes"] is None  # one SQLite daemon: no nodes panel
    figures = body["figures"]
    assert figures["created"] == 3
    assert figures["deliveries"]["delivered"] == 1
    assert figures["lateness_s"]["count"] == 1
    assert figures["lateness_s"]["p50"] is not None
    assert figures["timers"] == body["counts"]


def _fired(times: list[float]) -> list[Timer]:
    return [
        Timer(
            id=f"t{i:06d}",
            url="http://x/",
            fire_at=at,
            created_at=at,
            status=Status.FIRED,
            updated_at=at,
        )
        for i, at in enumerate(times)
    ]


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "times",
    [
        [],
        [NOW - 5],
        [NOW - 86_400 * 400 * k for k in range(1, 6)],  # sparse, years back
        [NOW - i * 0.001 for i in range(5000)],  # dense: 5000 in the last 5 s
        [NOW - i * 0.2 for i in range(3000)] + [NOW - 86_400 * 90 - i for i in range(3000)],
        [NOW - 3600 * 24 * 60 - i * 0.0001 for i in range(2000)],  # a crowded sliver, long ago
        [NOW - 10 + i * 0.0 for i in range(300)],  # 300 at the same instant
    ],
    ids=["empty", "one", "sparse", "dense", "two-clusters", "old-sliver", "same-instant"],
)
async def test_newest_timers_are_the_latest_due(times: list[float], tmp_path: Path) -> None:
    """One index read backwards (it replaced a bisecting search over forward pages)."""
    store = SqliteStore(tmp_path / "t.db")
    await store.open()
    try:
        timers = _fired(times)
        others = [t._replace(id="x" + t.id, status=Status.FAILED) for t in timers[:50]]
        await store.insert_timers(timers + others)
        got = await newest_timers(store, Status.FIRED, 8)
    finally:
        await store.close()
    want = sorted(timers, key=lambda t: (t.fire_at, t.id), reverse=True)[:8]
    assert [t.id for t in got] == [t.id for t in want]
