"""The `timerd` command line against a running daemon (`--addr`) and its database (`--db`)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Receiver
from tests.e2e.conftest import CliRunner, DaemonStarter, hits_by_id, wait_for_ids, wait_status

pytestmark = pytest.mark.e2e

ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
UNREACHABLE = "http://127.0.0.1:1"


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def _table_ids(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "FIRE"], stdout
    return [line.split()[0] for line in lines[1:]]


async def test_cli_commands_against_a_running_daemon_and_its_database(
    daemon: DaemonStarter,
    receiver: Receiver,
    http: aiohttp.ClientSession,
    cli: CliRunner,
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    d = await daemon(db)
    addr = ("--addr", d.url)

    # add prints the id alone on stdout (for scripts), and when it is due on stderr (SPEC)
    # due in 1 min: the checks below never race its firing (it is cancelled first)
    added = (await cli("add", receiver.url, "--in", "1m", *addr)).ok()
    first = added.stdout.strip()
    assert ID_RE.fullmatch(first), added.stdout
    assert re.fullmatch(r"due \S+[+-]\d\d:\d\d \(in (59s|1m)\)\n", added.stderr), added.stderr

    # list, as a table and as JSON
    table = (await cli("list", *addr)).ok()
    assert _table_ids(table.stdout) == [first]
    assert "pending" in table.stdout
    rows = (await cli("list", "--json", *addr)).ok().json()
    assert _ids(rows) == [first]
    assert rows[0]["status"] == "pending"
    assert rows[0]["url"] == receiver.url
    assert rows[0]["time_left"] in range(50, 61)

    # show, as lines and as JSON
    shown = (await cli("show", first, *addr)).ok().stdout
    assert re.search(rf"^id:\s+{re.escape(first)}$", shown, re.M), shown
    assert re.search(r"^status:\s+pending$", shown, re.M), shown
    detail = (await cli("show", first, "--json", *addr)).ok().json()
    assert detail["id"] == first
    assert detail["status"] == "pending"
    assert detail["time_left"] in range(50, 61)

    # cancel; a second cancel returns it unchanged (README: DELETE of a cancelled timer is
    # not an error); firing a cancelled timer is a conflict
    assert (await cli("cancel", first, *addr)).ok().stdout.strip() == f"cancelled {first}"
    assert (await cli("show", first, "--json", *addr)).ok().json()["status"] == "cancelled"
    (await cli("cancel", first, *addr)).ok()
    assert "cancel" in (await cli("fire", first, *addr)).one_error_line()

    # --hours/--minutes/--seconds; fire now: the receiver gets it at once
    second = (await cli("add", receiver.url, "--hours", "1", "--minutes", "2", *addr)).ok()
    second_id = second.stdout.strip()
    asked_at = time.time()
    assert (await cli("fire", second_id, *addr)).ok().stdout.strip() == f"firing {second_id}"
    await wait_for_ids(receiver, {second_id})
    (hit,) = hits_by_id(receiver)[second_id]
    # Timerd-Fire-At of a manual fire: the moment it was asked for
    assert asked_at - 0.001 <= float(hit.headers["Timerd-Fire-At"]) <= hit.arrived_at + 0.001
    await wait_status(http, d.url, second_id, "fired")

    # fired: firing or cancelling again fails with one line and exit 1
    assert "already fired" in (await cli("fire", second_id, *addr)).one_error_line()
    assert "already fired" in (await cli("cancel", second_id, *addr)).one_error_line()

    # attempts, as lines and as JSON
    # a header row, then one row per attempt (issue 16.9: the table had no header)
    lines = (await cli("attempts", second_id, *addr)).ok().stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["#", "STARTED", "DURATION", "STATUS", "OUTCOME", "ERROR"]
    assert lines[1].startswith("1 ")
    assert "200" in lines[1]
    assert "delivered" in lines[1]
    history = (await cli("attempts", second_id, "--json", *addr)).ok().json()
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in history] == [
        (1, 200, "delivered")
    ]

    # --at, then reschedule by time and by url
    at = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    third = (await cli("add", receiver.url, "--at", at, *addr)).ok().stdout.strip()
    third_fire_at = (await cli("show", third, "--json", *addr)).ok().json()["fire_at"]
    assert third_fire_at == datetime.fromisoformat(at).timestamp()
    before = time.time()
    moved = (await cli("reschedule", third, "--in", "2h", *addr)).ok()
    assert moved.stdout.startswith(f"{third} due ")
    after_move = (await cli("show", third, "--json", *addr)).ok().json()
    assert before + 7200 - 1 <= after_move["fire_at"] <= time.time() + 7200 + 1
    new_url = receiver.url + "/moved"
    (await cli("reschedule", third, "--url", new_url, *addr)).ok()
    after_url = (await cli("show", third, "--json", *addr)).ok().json()
    assert after_url["url"] == new_url
    assert after_url["fire_at"] == after_move["fire_at"]
    assert "fired" in (await cli("reschedule", second_id, "--in", "1m", *addr)).one_error_line()

    # --idempotency-key: the same request twice is one timer
    keyed = [
        (await cli("add", receiver.url, "--in", "1h", "--idempotency-key", "k-1", *addr))
        .ok()
        .stdout.strip()
        for _ in range(2)
    ]
    assert keyed[0] == keyed[1]

    # unknown ids: exit 1, one line
    unknown = "NoSuchTimer0000000000"
    results = await asyncio.gather(
        *(cli(command, unknown, *addr) for command in ("show", "fire", "cancel", "attempts")),
        cli("reschedule", unknown, "--in", "1m", *addr),
    )
    for result in results:
        assert unknown in result.one_error_line()

    # --status filters
    pending = (await cli("list", "--status", "pending", "--json", *addr)).ok().json()
    assert sorted(_ids(pending)) == sorted([third, keyed[0]])
    fired = (await cli("list", "--status", "fired", "--json", *addr)).ok().json()
    assert _ids(fired) == [second_id]
    limited = (await cli("list", "--status", "all", "--limit", "2", "--json", *addr)).ok().json()
    assert len(limited) == 2

    # --db reads the same data while the daemon runs (SPEC: list shows live timers by default)
    all_ = ("--status", "all")
    via_api = (await cli("list", "--json", *all_, *addr)).ok().json()
    assert len(via_api) == 4
    via_db = (await cli("list", "--json", *all_, "--db", db)).ok().json()
    assert _without_time_left(via_db) == _without_time_left(via_api)
    assert _table_ids((await cli("list", *all_, "--db", db)).ok().stdout) == _ids(via_api)
    shown_db = (await cli("show", second_id, "--json", "--db", db)).ok().json()
    assert shown_db == (await cli("show", second_id, "--json", *addr)).ok().json()
    assert re.search(
        r"^status:\s+fired$", (await cli("show", second_id, "--db", db)).ok().stdout, re.M
    )

    # export: from the daemon and from the file, the same lines
    exported_api = (await cli("export", *addr)).ok().stdout.splitlines()
    exported_db = (await cli("export", "--db", db)).ok().stdout.splitlines()
    assert exported_api == exported_db
    assert [json.loads(line)["id"] for line in exported_api] == _ids(via_api)
    assert all("time_left" not in json.loads(line) for line in exported_api)

    # --db after the daemon stopped
    assert await d.stop() == 0
    after_stop = (await cli("list", "--json", *all_, "--db", db)).ok().json()
    assert _without_time_left(after_stop) == _without_time_left(via_api)
    assert (await cli("show", second_id, "--json", "--db", db)).ok().json()["status"] == "fired"
    assert (
        "NoSuchTimer" in (await cli("show", "NoSuchTimer0000000000", "--db", db)).one_error_line()
    )
    assert (await cli("export", "--db", db)).ok().stdout.splitlines() == exported_db

    # and the daemon is gone: --addr fails with one line
    assert "cannot reach" in (await cli("list", *addr)).one_error_line()

    # nothing fired that should not have: only the one fired by hand
    assert receiver.ids() == [second_id]


async def test_cli_add_in_2s_prints_an_id_and_the_timer_fires_2s_later(
    daemon: DaemonStarter,
    receiver: Receiver,
    http: aiohttp.ClientSession,
    cli: CliRunner,
    tmp_path: Path,
) -> None:
    d = await daemon(tmp_path / "x.db")
    added = (await cli("add", receiver.url, "--in", "2s", "--addr", d.url)).ok()
    tid = added.stdout.strip()
    assert ID_RE.fullmatch(tid), added.stdout
    await wait_for_ids(receiver, {tid})
    timer = await wait_status(http, d.url, tid, "fired")
    assert timer["fire_at"] == pytest.approx(timer["created_at"] + 2.0, abs=0.001)
    (hit,) = receiver.hits
    assert timer["fire_at"] <= hit.arrived_at < timer["fire_at"] + 0.5


def _without_time_left(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "time_left"} for r in rows]


USAGE_ERRORS = [  # arguments, and the command whose --help the error line points at
    (("add", "http://127.0.0.1:9/hook"), "add"),
    (("add", "http://127.0.0.1:9/hook", "--in", "2s", "--at", "2030-01-01T00:00:00Z"), "add"),
    (("add", "http://127.0.0.1:9/hook", "--in", "soon"), "add"),
    (("add", "http://127.0.0.1:9/hook", "--hours", "-1"), "add"),
    (("add",), "add"),
    (("list", "--status", "sleeping"), "list"),
    (("list", "--addr", UNREACHABLE, "--db", "x.db"), "list"),
    (("reschedule", "abc"), "reschedule"),
    (("show",), "show"),
    (("import", "--db", "x.db"), "import"),
    (("serve", "--bogus"), "serve"),
    (("list", "--json", "--bogus"), "list"),
    (("--bogus",), ""),
    (("frobnicate",), ""),
    (("service", "frobnicate"), "service"),
]


@pytest.mark.parametrize(
    ("args", "help_of"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS]
)
async def test_usage_errors_are_one_line_and_exit_2(
    cli: CliRunner, args: tuple[str, ...], help_of: str
) -> None:
    result = await cli(*args)
    line = result.one_error_line(rc=2)
    assert line.startswith("timerd: error: "), line
    # and it points at the help of the command that was misused
    command = f"timerd {help_of}".strip()
    assert line.endswith(f"(see '{command} --help')"), line
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("add", "http://127.0.0.1:9/hook", "--in", "2s"),
        ("list",),
        ("show", "abc"),
        ("fire", "abc"),
        ("cancel", "abc"),
        ("attempts", "abc"),
        ("reschedule", "abc", "--in", "1m"),
        ("export",),
    ],
    ids=lambda a: a[0],
)
async def test_unreachable_daemon_exits_1_with_one_line(
    cli: CliRunner, args: tuple[str, ...]
) -> None:
    line = (await cli(*args, "--addr", UNREACHABLE)).one_error_line()
    assert line.startswith("timerd: error: cannot reach timerd at http://127.0.0.1:1")


async def test_db_reads_of_a_missing_file_fail_with_one_line(
    cli: CliRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    for args in (("list",), ("show", "abc"), ("export",)):
        line = (await cli(*args, "--db", missing)).one_error_line()
        assert str(missing) in line
    assert not missing.exists(), "a read-only command must not create the database"


async def test_import_defaults_to_the_configured_database_like_backup(
    cli: CliRunner, tmp_path: Path
) -> None:
    """One rule for both (issue 16.9): without --db, the database `timerd serve` would use."""
    line = {
        "id": "P88flSRBiyaHc8EtoSR7JxY",
        "url": "http://127.0.0.1:9/hook",
        "status": "pending",
        "fire_at": time.time() + 3600,
        "created_at": time.time(),
        "updated_at": time.time(),
        "next_attempt_at": time.time() + 3600,
        "attempts": 0,
        "fired_at": None,
        "last_status_code": None,
        "last_error": None,
    }
    dump = tmp_path / "timers.jsonl"
    dump.write_text(json.dumps(line) + "\n")
    configured = tmp_path / "xdg-data" / "timerd" / "timerd.db"
    imported = (await cli("import", dump)).ok()
    assert imported.stdout == "imported 1, skipped 0\n"
    assert imported.stderr == f"timerd: importing into {configured} (the configured database)\n"
    rows = (await cli("list", "--json", "--db", configured)).ok().json()
    assert [r["id"] for r in rows] == [line["id"]]
    backed = (await cli("backup", tmp_path / "copy.db")).ok()
    assert backed.stdout.startswith(f"backed up {configured} to ")
