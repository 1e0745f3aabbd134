"""Shared fixtures: settings on a tmp_path database, a real webhook receiver, an API client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from timerd.config import Settings
from timerd.daemon.app import build_app
from timerd.store import PostgresStore, SqliteStore, Store

pytest_plugins = ["tests.pg.plugin"]  # the throwaway PostgreSQL: pg_cluster, pg_url

AiohttpServer = Callable[..., Awaitable[TestServer]]
AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Return Settings on a fresh database under `tmp_path`, fast retries for tests."""
    values: dict[str, Any] = {
        "db": tmp_path / "timerd.db",
        "port": 0,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "attempt_timeout_s": 2.0,
        "grace_s": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Hit:
    """One webhook request as the receiver saw it."""

    path: str
    query: str
    method: str
    headers: dict[str, str]
    body: bytes
    arrived_at: float


@dataclass
class Receiver:
    """A real aiohttp server on 127.0.0.1 that records every webhook it gets."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    # decides the answer for each hit; default: 200
    respond: Callable[[Hit], Awaitable[web.StreamResponse]] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def ids(self) -> list[str]:
        """Return the last path segment of every hit, in arrival order."""
        return [h.path.rsplit("/", 1)[-1] for h in self.hits]

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Hit]:
        """Wait until at least `count` hits arrived, or fail after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while len(self.hits) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.hits

    async def handle(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(
            path=request.path,
            query=request.query_string,
            method=request.method,
            headers=dict(request.headers),
            body=await request.read(),
            arrived_at=time.time(),
        )
        self.hits.append(hit)
        self._changed.set()
        if self.respond is not None:
            return await self.respond(hit)
        return web.Response(status=200)


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> Receiver:
    """Start a webhook receiver that accepts any path and method."""
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    rec.url = str(server.make_url("/hook")).rstrip("/")
    return rec


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh database in tmp_path."""
    return make_settings(tmp_path)


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient[Any, Any]:
    """A test client over the real app (store open, due loop running)."""
    return await aiohttp_client(build_app(settings))


@pytest.fixture
def make_api(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    """Build an API client with settings overrides: `await make_api(max_attempts=2)`."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        return await aiohttp_client(build_app(make_settings(tmp_path, **overrides)))

    return factory


# stores: every backend of the Store contract ---------------------------------------------


async def open_sqlite(path: Path, **kw: object) -> SqliteStore:
    store = SqliteStore(path, attempts_kept=3, **kw)  # type: ignore[arg-type]
    await store.open()
    return store


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The contract's subject: a fresh store on each backend (PostgreSQL: its own database)."""
    if request.param == "sqlite":
        s = await open_sqlite(tmp_path / "t.db")
        yield s
        await s.close()
        return
    from tests.pg.plugin import fresh_database  # a plugin: pytest must import it first

    async with fresh_database(request.getfixturevalue("pg_cluster")) as url:
        pg = PostgresStore(url, attempts_kept=3)
        await pg.open()
        yield pg
        await pg.close()
