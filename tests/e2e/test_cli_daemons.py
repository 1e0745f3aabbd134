"""The CLI talks to the daemon the user means: `--addr`, else the daemon of `--db` or of the
configured database (from the address it records beside the file), else the default address.

Issue 16 item 3: with two daemons running, `timerd add ... --db other.db` created the timer in
the other one. Two real daemons here, neither on a fixed port.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import CliRunner, DaemonStarter, get_timer

pytestmark = pytest.mark.e2e

HOOK = "http://127.0.0.1:9/hook"


def _configured_db(tmp_path: Path) -> Path:
    """The database `timerd serve` uses under the cli fixture's clean environment."""
    return tmp_path / "xdg-data" / "timerd" / "timerd.db"


async def _status(http: aiohttp.ClientSession, base: str, timer_id: str) -> int:
    async with http.get(f"{base}/timers/{timer_id}") as resp:
        return resp.status


async def test_management_commands_reach_the_daemon_of_the_database_they_name(
    daemon: DaemonStarter, cli: CliRunner, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    configured = _configured_db(tmp_path)
    configured.parent.mkdir(parents=True)
    first = await daemon(configured)
    other_db = tmp_path / "other.db"
    second = await daemon(other_db)

    # the daemon records its real address (it listens on a port chosen at start)
    record = json.loads((tmp_path / "other.db.addr").read_text())
    assert record["url"] == second.url

    added = (await cli("add", HOOK, "--in", "1h", "--db", other_db, "--verbose")).ok()
    in_second = added.stdout.strip()
    assert f"talking to {second.url} (the daemon of {other_db}" in added.stderr
    assert await _status(http, second.url, in_second) == 200
    assert await _status(http, first.url, in_second) == 404

    # no --addr and no --db: the daemon of the configured database, wherever it listens
    in_first = (await cli("add", HOOK, "--in", "2h")).ok().stdout.strip()
    assert await _status(http, first.url, in_first) == 200
    assert await _status(http, second.url, in_first) == 404
    listed = (await cli("list", "--json", "--verbose")).ok()
    assert [r["id"] for r in listed.json()] == [in_first]
    assert f"talking to {first.url}" in listed.stderr

    # every management command takes --db to pick the daemon
    db = ("--db", other_db)
    (await cli("reschedule", in_second, "--in", "3h", *db)).ok()
    assert (await get_timer(http, second.url, in_second))["time_left"] > 2 * 3600
    assert (await cli("attempts", in_second, "--json", *db)).ok().json() == []
    (await cli("fire", in_second, *db)).ok()
    doomed = (await cli("add", HOOK, "--in", "1h", *db)).ok().stdout.strip()
    (await cli("cancel", doomed, *db)).ok()
    assert (await get_timer(http, second.url, doomed))["status"] == "cancelled"
    exported = (await cli("export", "--addr", second.url)).ok().stdout.splitlines()
    assert {json.loads(line)["id"] for line in exported} == {in_second, doomed}
    assert (await cli("stats", "--json", *db)).ok().json()["addr"] == second.url
    # errors say which daemon answered
    line = (await cli("cancel", in_first, *db)).one_error_line()
    assert line.endswith(f"(timerd at {second.url})"), line

    # --addr and --db together are a usage error
    (await cli("add", HOOK, "--in", "1h", "--addr", first.url, *db)).one_error_line(rc=2)

    # a clean stop removes the record: --db then names no daemon, and says so
    assert await second.stop() == 0
    assert not (tmp_path / "other.db.addr").exists()
    line = (await cli("add", HOOK, "--in", "1h", *db)).one_error_line()
    assert line == (
        f"timerd: error: no timerd is running on {other_db}; start one with "
        f"`timerd serve --db {other_db}`, or give --addr"
    )


async def test_a_stale_record_is_never_used(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    db = tmp_path / "gone.db"
    d = await daemon(db)
    assert await d.kill9() == -9  # no clean stop: the record stays behind, unheld
    record = tmp_path / "gone.db.addr"
    assert json.loads(record.read_text())["url"] == d.url

    line = (await cli("add", HOOK, "--in", "1h", "--db", db)).one_error_line()
    assert f"no timerd is running on {db} (its address record {record} is stale" in line

    # the configured database's stale record: not used, and --verbose says so
    configured = _configured_db(tmp_path)
    configured.parent.mkdir(parents=True)
    configured.with_name("timerd.db.addr").write_text(record.read_text())
    result = await cli("list", "--verbose")
    assert result.stderr.startswith(
        "timerd: talking to http://127.0.0.1:8000 (the default address; ignored the stale record"
    ), result.stderr
    assert d.url not in result.stderr.splitlines()[-1]
