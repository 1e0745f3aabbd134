"""Times people type and read, and a `list` that shows what is coming (issue 16, items 4 and 5).

`--in 1d12h`, `--in 1.5h`; `--at` without an offset is the machine's local time zone; tables show
`1d12h` left, not seconds; `add` says when the timer is due; `list` shows live timers soonest
first and ends with the `--cursor` that continues. The real CLI against a real daemon.
"""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Receiver
from tests.e2e.conftest import CliResult, CliRunner, DaemonStarter, create_timer, wait_status

pytestmark = pytest.mark.e2e

HOOK = "http://127.0.0.1:9/hook"
ZONE = "Asia/Kolkata"  # +05:30 all year: a local time that is not UTC, and no DST to dodge


async def _fire_at(cli: CliRunner, addr: str, timer_id: str) -> float:
    shown = (await cli("show", timer_id, "--json", "--addr", addr)).ok().json()
    return float(shown["fire_at"])


async def test_durations_take_days_hours_and_fractions(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "x.db")
    for text, delay_s in (("1d12h", 129_600), ("1.5h", 5_400), ("2d3h4m5.5s", 183_845.5)):
        before = time.time()
        added = (await cli("add", HOOK, "--in", text, "--addr", d.url)).ok()
        fire_at = await _fire_at(cli, d.url, added.stdout.strip())
        assert before + delay_s - 0.001 <= fire_at <= time.time() + delay_s, text
    # reschedule takes the same syntax
    timer_id = added.stdout.strip()
    before = time.time()
    (await cli("reschedule", timer_id, "--in", "0.5d", "--addr", d.url)).ok()
    assert before + 43_200 - 0.001 <= await _fire_at(cli, d.url, timer_id) <= time.time() + 43_200


async def test_at_without_an_offset_is_local_time_and_errors_name_the_flag(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "x.db")
    local = datetime.now(ZoneInfo(ZONE)).replace(microsecond=0, tzinfo=None) + timedelta(days=2)
    typed = local.isoformat()  # like 2026-12-24T10:00:00: no offset
    env = {"TZ": ZONE}
    added = (await cli("add", HOOK, "--at", typed, "--addr", d.url, env_extra=env)).ok()
    expected = local.replace(tzinfo=ZoneInfo(ZONE)).timestamp()
    assert await _fire_at(cli, d.url, added.stdout.strip()) == expected
    # add says when, in the same local time zone, with its offset
    assert added.stderr == f"due {typed}+05:30 (in 2d)\n", added.stderr
    # an offset or Z is taken as written
    (await cli("add", HOOK, "--at", typed + "Z", "--addr", d.url, env_extra=env)).ok()

    line = (await cli("add", HOOK, "--at", "next tuesday", "--addr", d.url)).one_error_line(2)
    assert "Invalid value for '--at': 'next tuesday' is not a time like" in line
    far = (local + timedelta(days=365 * 20)).isoformat()
    line = (await cli("add", HOOK, "--at", far, "--addr", d.url)).one_error_line()
    assert line.startswith("timerd: error: --at: is more than"), line
    assert "fire_at" not in line


async def test_tables_show_time_left_as_people_read_it(
    daemon: DaemonStarter, cli: CliRunner, tmp_path: Path
) -> None:
    d = await daemon(tmp_path / "x.db")
    # the two largest units, to the nearest of the smaller one
    added = (await cli("add", HOOK, "--in", "24d20h20m", "--addr", d.url)).ok()
    assert added.stderr.endswith("(in 24d20h)\n"), added.stderr
    table = (await cli("list", "--addr", d.url)).ok().stdout.splitlines()
    assert table[0].split()[:5] == ["ID", "STATUS", "FIRE", "AT", "LEFT"]
    assert table[1].split()[3] == "24d20h", table
    assert not re.search(r"\b\d{4,}s\b", "\n".join(table))
    shown = (await cli("show", added.stdout.strip(), "--addr", d.url)).ok().stdout
    assert re.search(r"^time_left:\s+24d20h$", shown, re.M), shown


def _table_ids(result: CliResult) -> list[str]:
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ID "), result.stdout
    return [line.split()[0] for line in lines[1:] if not line.startswith("more timers")]


def _next_page(result: CliResult) -> list[str] | None:
    """Return the arguments of the command the last line gives, or None when there is none."""
    last = result.stdout.splitlines()[-1]
    if not last.startswith("more timers"):
        return None
    command = shlex.split(last.split(": ", 1)[1])
    assert command[:2] == ["timerd", "list"], last
    return command[2:]


async def test_list_shows_live_timers_soonest_first_and_says_how_to_continue(
    daemon: DaemonStarter,
    cli: CliRunner,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    # retries an hour apart: a failed first attempt leaves its timer retrying for the test
    d = await daemon(db, "--backoff-base-s", "3600", "--backoff-max-s", "3600")

    async def fail(_: Any) -> web.StreamResponse:
        return web.Response(status=503)

    receiver.respond = fail
    retrying = await create_timer(http, d.url, seconds=0, url=receiver.url)
    await wait_status(http, d.url, retrying, "retrying")
    # a hundred finished timers ahead of everything that is coming
    for n in range(105):
        done = await create_timer(http, d.url, seconds=30 + n / 100, url=HOOK)
        async with http.delete(f"{d.url}/timers/{done}") as resp:
            assert resp.status == 200
    pending = [await create_timer(http, d.url, seconds=60 * (5 - n), url=HOOK) for n in range(5)]
    live = [retrying, *reversed(pending)]  # soonest first: the retrying one was due at once

    default = (await cli("list", "--addr", d.url)).ok()
    assert _table_ids(default) == live
    assert _next_page(default) is None
    assert "retrying" in default.stdout
    assert "cancelled" not in default.stdout
    rows = (await cli("list", "--json", "--addr", d.url)).ok().json()
    assert [r["id"] for r in rows] == live

    # pages of 2: the last line gives the command that continues, down to the end
    for source in (("--addr", d.url), ("--db", str(db))):
        seen: list[str] = []
        args: list[str] | None = ["--limit", "2", *source]
        while args is not None:
            page = (await cli("list", *args)).ok()
            ids = _table_ids(page)
            assert 1 <= len(ids) <= 2
            seen += ids
            args = _next_page(page)
            if args is not None:
                assert args[:2] == ["--limit", "2"]
                assert args[2:4] == list(source)
        assert seen == live, source

    # more rows than shown under --status all: the continuation keeps the status
    first = (await cli("list", "--status", "all", "--addr", d.url)).ok()
    assert len(_table_ids(first)) == 100
    rest_args = _next_page(first)
    assert rest_args is not None
    assert rest_args[:2] == ["--status", "all"]
    rest = (await cli("list", *rest_args)).ok()
    assert len(_table_ids(rest)) == 111 - 100
    # --json keeps stdout JSON and says it on stderr
    paged = await cli("list", "--json", "--limit", "1", "--addr", d.url)
    assert len(paged.ok().json()) == 1
    assert paged.stderr.startswith("more timers; the next page: timerd list --limit 1 ")
    line = (await cli("list", "--cursor", "nonsense", "--addr", d.url)).one_error_line(2)
    assert "'nonsense' is not a cursor" in line
