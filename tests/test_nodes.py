"""The node registry and the PostgreSQL wiring in process (issue 15): settings that keep a URL,
`GET /nodes`, `Timerd-Node`, the `nodes` table's heartbeat and lease, export and import."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path

import pytest

from tests.api_helpers import Client, create
from tests.conftest import Receiver
from tests.pg.cluster import PgCluster
from tests.pg.plugin import fresh_database
from timerd import __version__
from timerd.config import Settings, load_settings, node_id_of
from timerd.models import Attempt, Outcome, Status, Timer
from timerd.store import ClockSkew, SqliteStore
from timerd.store.postgres import PostgresStore
from timerd.store.postgres_nodes import PostgresNodes
from timerd.store.transfer import export_store, import_timers, parse_lines

URL = "postgresql://timerd:s3cret@db.example:5432/timerd?sslmode=require"


# settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [URL, "postgres://timerd@db.example//x"])
def test_a_postgresql_url_stays_a_string_everywhere(url: str, tmp_path: Path) -> None:
    assert Settings(db=url).db == url
    assert load_settings(env={"TIMERD_DB": url}).db == url
    assert load_settings(env={}, overrides={"db": url}).db == url
    config = tmp_path / "t.toml"
    config.write_text(f'db = "{url}"\n')
    assert load_settings(config_file=config, env={}).db == url


def test_anything_else_is_a_path(tmp_path: Path) -> None:
    assert load_settings(env={"TIMERD_DB": "~/x.db"}).db == Path("~/x.db").expanduser()
    assert Settings(db="mysql://x/y").db == Path("mysql:/x/y")


def test_node_id_defaults_to_hostname_and_pid() -> None:
    assert node_id_of(Settings()) == f"{socket.gethostname()}-{os.getpid()}"
    assert node_id_of(Settings(node_id="node-a")) == "node-a"


# GET /nodes and Timerd-Node on SQLite --------------------------------------------------------


async def test_get_nodes_on_sqlite_is_this_daemon(make_api: object) -> None:
    before = time.time()
    api: Client = await make_api(node_id="solo")  # type: ignore[operator]
    resp = await api.get("/nodes")
    assert resp.status == 200
    (node,) = (await resp.json())["nodes"]
    assert node["id"] == "solo"
    assert node["version"] == __version__
    assert before <= node["started_at"] <= node["last_seen_at"] <= time.time()


async def test_get_nodes_other_methods_are_405_problems(api: Client) -> None:
    resp = await api.post("/nodes")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Allow"] == "GET"


async def test_every_webhook_names_its_node(make_api: object, receiver: Receiver) -> None:
    api: Client = await make_api(node_id="node-7")  # type: ignore[operator]
    await create(api, seconds=0, url=receiver.url)
    (hit,) = await receiver.wait_for(1)
    assert hit.headers["Timerd-Node"] == "node-7"


async def test_the_default_node_id_goes_on_the_webhook(api: Client, receiver: Receiver) -> None:
    await create(api, seconds=0, url=receiver.url)
    (hit,) = await receiver.wait_for(1)
    assert hit.headers["Timerd-Node"] == f"{socket.gethostname()}-{os.getpid()}"


# the nodes table ----------------------------------------------------------------------------


async def _store(url: str) -> PostgresStore:
    store = PostgresStore(url)
    await store.open()  # migrates: the nodes table
    return store


def _nodes(url: str, node_id: str, **kw: object) -> PostgresNodes:
    options: dict[str, object] = {"lease_s": 0.6, "max_clock_skew_s": 1.0, **kw}
    return PostgresNodes(url, node_id=node_id, version="9.9", **options)  # type: ignore[arg-type]


async def test_nodes_join_beat_and_leave(pg_url: str) -> None:
    store = await _store(pg_url)
    offsets: list[float] = []
    a = _nodes(pg_url, "a", on_offset=offsets.append)
    b = _nodes(pg_url, "b")
    try:
        await a.start()
        await b.start()
        live = await a.live()
        assert [n.id for n in live] == ["a", "b"]
        assert live[0].version == "9.9"
        first_seen = live[0].last_seen_at
        # heartbeats keep both live well past one lease, in the database's time
        deadline = time.monotonic() + 5
        while (await a.live())[0].last_seen_at == first_seen:
            assert time.monotonic() < deadline, "no heartbeat within 5 s"
            await _tick()
        await b.stop()
        assert [n.id for n in await a.live()] == ["a"]  # a clean stop: gone at once
        await b.stop()  # twice is harmless
        assert len(offsets) >= 2  # at start and on a heartbeat
        assert all(abs(o) < 0.05 for o in offsets)  # one machine: one clock
    finally:
        await a.stop()
        await b.stop()
        await store.close()


async def test_a_node_that_stops_beating_is_dropped_after_its_lease(pg_url: str) -> None:
    store = await _store(pg_url)
    a, ghost = _nodes(pg_url, "a"), _nodes(pg_url, "ghost")
    try:
        await a.start()
        await ghost.start()
        assert ghost._beat_task is not None
        ghost._beat_task.cancel()  # as if killed: no heartbeat, no clean leave
        stopped = time.monotonic()
        while "ghost" in [n.id for n in await a.live()]:
            assert time.monotonic() - stopped < 0.6 + 1.0, "the dead node outlived its lease"
            await _tick()
        assert time.monotonic() - stopped >= 0.6 / 3  # not before its lease could run out
    finally:
        await a.stop()
        await ghost.stop()
        await store.close()


async def test_a_restarted_node_takes_its_row_back_with_a_new_start(pg_url: str) -> None:
    store = await _store(pg_url)
    first = _nodes(pg_url, "a")
    try:
        await first.start()
        (was,) = await first.live()
        assert first._beat_task is not None
        first._beat_task.cancel()  # killed: its row stays
        again = _nodes(pg_url, "a")
        await again.start()
        (now,) = await again.live()
        assert now.started_at > was.started_at
        await again.stop()
    finally:
        await first.stop()
        await store.close()


async def test_a_clock_too_far_off_refuses_to_join(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _store(pg_url)
    # this node's clock runs 5 s ahead of the database's; 1 s is allowed
    skewed = _nodes(pg_url, "skewed", max_clock_skew_s=1.0, now=lambda: time.time() + 5.0)
    try:
        with pytest.raises(ClockSkew, match=r"max_clock_skew_s \(1 s\).*NTP"):
            await skewed.start()
        assert skewed._pool is None
        other = _nodes(pg_url, "other")
        await other.start()
        assert [n.id for n in await other.live()] == ["other"]  # the refused one never joined
        await other.stop()
    finally:
        await skewed.stop()
        await store.close()


async def test_an_offset_over_50_ms_is_a_warning_once(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = _nodes(pg_url, "a")
    with caplog.at_level(logging.INFO, logger="timerd.store.postgres_nodes"):
        nodes._note_offset(0.2)
        nodes._note_offset(0.3)
        nodes._note_offset(0.001)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "0.200000 s ahead of the database's" in warnings[0].getMessage()
    assert "back within 50 ms" in caplog.records[-1].getMessage()


# export and import on PostgreSQL ------------------------------------------------------------


def _timer(timer_id: str, fire_at: float, status: Status = Status.PENDING) -> Timer:
    live = status in (Status.PENDING, Status.RETRYING)
    return Timer(
        timer_id, "https://example.com/h", fire_at, 1.0, status, fire_at if live else None,
        0 if live else 1, 1.0, None if live else fire_at, None, None,
    )  # fmt: skip


async def test_import_into_postgresql_keeps_histories_and_skips_existing(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    history = [
        Attempt("f" * 22, 1, 5.0, 3.0, 500, None, Outcome.RETRY),
        Attempt("f" * 22, 2, 6.0, 2.0, 200, None, Outcome.DELIVERED),
    ]
    old = SqliteStore(tmp_path / "old.db")
    await old.open()
    await old.import_missing(
        [
            (_timer("f" * 22, 5.0, Status.FIRED), history),
            (_timer("p" * 22, time.time() + 3600), []),
            (_timer("d" * 22, time.time() - 5), []),
        ]
    )
    lines = [line async for line in export_store(old, None, time.time())]
    await old.close()

    async with fresh_database(pg_cluster) as url:
        imported, skipped = await import_timers(url, parse_lines(lines))
        assert (imported, skipped) == (3, 0)
        assert await import_timers(url, parse_lines(lines)) == (0, 3)
        pg = PostgresStore(url, read_only=True)
        await pg.open()
        try:
            again = [line async for line in export_store(pg, None, time.time())]
            assert sorted(again) == sorted(lines)  # unchanged, histories included
            assert await pg.count_due(time.time()) == 1  # the overdue one
            assert (await pg.attempts_of(["f" * 22, "p" * 22])) == {"f" * 22: history}
        finally:
            await pg.close()


async def _tick() -> None:
    """Let a heartbeat happen between two polls of a predicate (each bounded by a deadline)."""
    await asyncio.sleep(0.05)
