"""Real `timerd serve --db postgresql://...` nodes on the throwaway cluster (issue 15): one node
serves the whole API and fires; nodes list each other, leave at once on SIGTERM and within
about `node_lease_s` after kill -9; a clock too far off refuses to start; the password never
shows; the CLI reads, imports into and refuses to back up a PostgreSQL URL."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Receiver
from tests.e2e.conftest import (
    CliRunner,
    DaemonStarter,
    create_timer,
    get_timer,
    list_all,
    wait_until,
)
from tests.pg.cluster import PgCluster
from tests.procs import QUIET, TIMERD, Daemon, DaemonStartError, clean_env
from timerd.models import Status, Timer
from timerd.store import SqliteStore

pytestmark = pytest.mark.e2e

LEASE_S = 3.0


async def _node_ids(http: aiohttp.ClientSession, base: str) -> list[str]:
    async with http.get(f"{base}/nodes") as resp:
        assert resp.status == 200, await resp.text()
        return [n["id"] for n in (await resp.json())["nodes"]]


async def test_one_node_on_postgresql_serves_the_api_and_fires(
    pg_url: str,
    daemon: DaemonStarter,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    cli: CliRunner,
) -> None:
    node = await daemon(pg_url, "--node-id", "node-a")  # type: ignore[arg-type]
    soon = await create_timer(http, node.url, seconds=0.2, url=receiver.url)
    later = await create_timer(http, node.url, hours=1, url=receiver.url)
    by_hand = await create_timer(http, node.url, hours=2, url=receiver.url)
    assert (await get_timer(http, node.url, later))["status"] == "pending"
    assert {t["id"] for t in await list_all(http, node.url)} == {soon, later, by_hand}
    async with http.delete(f"{node.url}/timers/{later}") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "cancelled"
    async with http.post(f"{node.url}/timers/{by_hand}/fire") as resp:
        assert resp.status == 202
    hits = await receiver.wait_for(2)
    assert sorted(receiver.ids()) == sorted([soon, by_hand])
    assert {h.headers["Timerd-Node"] for h in hits} == {"node-a"}

    async def fired() -> bool:
        statuses = [(await get_timer(http, node.url, t))["status"] for t in (soon, by_hand)]
        return statuses == ["fired", "fired"]

    await wait_until(fired, "both outcomes recorded")
    # the CLI reads the database directly, while the node runs
    listed = (await cli("list", "--db", pg_url, "--status", "all", "--json")).ok().json()
    assert {t["id"]: t["status"] for t in listed} == {
        soon: "fired",
        later: "cancelled",
        by_hand: "fired",
    }
    shown = (await cli("show", soon, "--db", pg_url, "--json")).ok().json()
    assert shown["status"] == "fired"
    exported = (await cli("export", "--db", pg_url)).ok().stdout.splitlines()
    assert len(exported) == 3
    async with http.get(f"{node.url}/metrics") as resp:
        text = await resp.text()
    (gauge,) = [line for line in text.splitlines() if line.startswith("timerd_clock_offset")]
    assert abs(float(gauge.split()[-1])) < 0.05  # one machine, one clock; measured, present
    assert (await http.get(f"{node.url}/healthz")).status == 200


async def test_nodes_list_each_other_and_the_dead_go(
    pg_url: str, daemon: DaemonStarter, http: aiohttp.ClientSession, cli: CliRunner
) -> None:
    lease = ("--node-lease-s", str(LEASE_S))
    a, b = await asyncio.gather(
        daemon(pg_url, "--node-id", "node-a", *lease),  # type: ignore[arg-type]
        daemon(pg_url, "--node-id", "node-b", *lease),  # type: ignore[arg-type]
    )
    for node in (a, b):
        assert await _node_ids(http, node.url) == ["node-a", "node-b"]
    table = (await cli("nodes", "--addr", a.url)).ok().stdout.splitlines()
    assert table[0].split() == ["ID", "VERSION", "STARTED", "UP", "LAST", "SEEN"]
    assert [line.split()[0] for line in table[1:]] == ["node-a", "node-b"]
    assert all(line.rstrip().endswith("ago") for line in table[1:])
    as_json = (await cli("nodes", "--addr", b.url, "--json")).ok().json()
    assert [n["id"] for n in as_json["nodes"]] == ["node-a", "node-b"]
    assert set(as_json["nodes"][0]) == {"id", "started_at", "last_seen_at", "version"}

    assert await b.stop() == 0
    assert await _node_ids(http, a.url) == ["node-a"]  # a clean stop leaves at once

    c = await daemon(pg_url, "--node-id", "node-c", *lease)  # type: ignore[arg-type]
    assert await _node_ids(http, a.url) == ["node-a", "node-c"]
    await c.kill9()
    killed = time.monotonic()

    async def gone() -> bool:
        return await _node_ids(http, a.url) == ["node-a"]

    await wait_until(gone, "the killed node to drop out", timeout_s=LEASE_S + 3.0)
    took = time.monotonic() - killed
    assert took <= LEASE_S + 1.5, f"the killed node stayed {took:.2f} s"


async def test_the_password_is_never_printed_or_logged(
    pg_cluster: PgCluster,
    pg_url: str,
    daemon: DaemonStarter,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    cli: CliRunner,
    tmp_path: Path,
) -> None:
    secret = pg_cluster.password
    assert secret in pg_url
    node = await daemon(pg_url, env={"TIMERD_LOG_LEVEL": "debug"})  # type: ignore[arg-type]
    await create_timer(http, node.url, seconds=0, url=receiver.url)
    await receiver.wait_for(1)
    assert await node.stop() == 0
    printed = "".join(node.stdout_lines) + node.log()
    assert "postgresql://postgres@127.0.0.1" in printed  # the URL is logged, redacted
    assert secret not in printed

    wrong = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    results = [
        await cli("list", "--db", wrong),
        await cli("backup", str(tmp_path / "b.db"), "--db", pg_url),
        await cli("cancel", "someid", "--db", pg_url),
    ]
    refused = Daemon(wrong, env=QUIET, home=tmp_path)
    with pytest.raises(DaemonStartError) as caught:
        await refused.start()
    for result in results:
        assert secret not in result.stdout + result.stderr
    assert secret not in caught.value.stdout + caught.value.stderr
    assert "no_such_database" in results[0].one_error_line(1)
    assert "pg_dump" in results[1].one_error_line(1)
    assert "--addr" in results[2].one_error_line(2)
    assert caught.value.returncode == 1


async def test_without_the_driver_a_url_is_one_line_and_exit_1(
    pg_url: str, tmp_path: Path, cli: CliRunner
) -> None:
    shadow = tmp_path / "no-driver" / "asyncpg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('asyncpg is not installed here')\n")
    path = os.pathsep.join(p for p in (str(shadow.parent), os.environ.get("PYTHONPATH")) if p)
    node = Daemon(pg_url, env={"PYTHONPATH": path, **QUIET}, home=tmp_path)
    with pytest.raises(DaemonStartError) as caught:
        await node.start()
    assert caught.value.returncode == 1
    (line,) = [line for line in caught.value.stderr.splitlines() if line.strip()]
    assert "pip install 'timerd[postgresql]'" in line
    listed = await cli("list", "--db", pg_url, env_extra={"PYTHONPATH": path})
    assert "pip install 'timerd[postgresql]'" in listed.one_error_line(1)


async def test_export_from_sqlite_imports_into_a_running_set(
    pg_url: str,
    daemon: DaemonStarter,
    http: aiohttp.ClientSession,
    cli: CliRunner,
    tmp_path: Path,
) -> None:
    old = SqliteStore(tmp_path / "old.db")
    await old.open()
    ids = ["A" * 22, "B" * 22]
    due = time.time() + 3600
    await old.import_missing(
        [
            (Timer(tid, "https://example.com/h", due, 1.0, Status.PENDING, due, 0, 1.0), [])
            for tid in ids
        ]
    )
    await old.close()
    node = await daemon(pg_url)  # type: ignore[arg-type]
    # the README's command, through a shell pipe, while the node runs
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        f'"{TIMERD}" export --db "$OLD" | "{TIMERD}" import - --db "$URL"',
        env={**clean_env(tmp_path), "OLD": str(old.path), "URL": pg_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "imported 2, skipped 0"
    assert {t["id"] for t in await list_all(http, node.url)} == set(ids)
    before = (await cli("export", "--db", old.path)).ok().stdout
    after = (await cli("export", "--db", pg_url)).ok().stdout
    assert sorted(after.splitlines()) == sorted(before.splitlines())
