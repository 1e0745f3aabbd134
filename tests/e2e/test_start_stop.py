"""A real `timerd serve` at both ends of its life: who may start, what it says, how it stops."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Hit, Receiver
from tests.e2e.conftest import (
    CliResult,
    CliRunner,
    DaemonStarter,
    create_timer,
    get_timer,
    wait_until,
)
from tests.procs import Daemon, DaemonStartError

pytestmark = pytest.mark.e2e

REFUSAL_TIMEOUT_S = 15.0


async def _refused(daemon: DaemonStarter, db: Path) -> CliResult:
    """Start `timerd serve --db DB`, which must exit by itself; return what it said."""
    with pytest.raises(DaemonStartError) as refused:
        await daemon(db, ready=False)
    exc = refused.value
    assert not exc.timed_out, f"timerd serve --db {db} neither listened nor exited"
    return CliResult(("serve", "--db", str(db)), exc.returncode, exc.stdout, exc.stderr)


async def _logged(d: Daemon, text: str, timeout_s: float = 10.0) -> str:
    """Wait until the daemon's stderr has a line containing `text`; return that line."""

    async def check() -> bool:
        return any(text in line for line in d.stderr_lines)

    await wait_until(check, f"{text!r} in the log of timerd on {d.db}", timeout_s)
    return next(line for line in d.stderr_lines if text in line)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask (inherited by the daemons started), so modes come from timerd."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def test_a_second_daemon_through_a_hard_link_or_a_symlink_is_refused(
    daemon: DaemonStarter, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    db = tmp_path / "timers.db"
    first = await daemon(db)
    tid = await create_timer(http, first.url, hours=1, url="http://127.0.0.1:9/hook")
    hard = tmp_path / "other.db"
    os.link(db, hard)
    soft = tmp_path / "link.db"
    soft.symlink_to(db)

    for other in (hard, soft):
        line = (await _refused(daemon, other)).one_error_line()
        assert line.startswith("timerd: error: database "), line
        assert "in use by" in line, line

    # the refused ones opened nothing of SQLite's under their own names
    assert not (tmp_path / "other.db-wal").exists()
    assert not (tmp_path / "other.db-shm").exists()
    assert first.running
    assert (await get_timer(http, first.url, tid))["status"] == "pending"
    # once the first stops, the hard link is a way to the same database like any other
    assert await first.stop() == 0
    again = await daemon(hard)
    assert (await get_timer(http, again.url, tid))["status"] == "pending"


async def test_a_taken_port_leaves_no_folder_database_or_lock(
    cli: CliRunner, tmp_path: Path
) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        db = tmp_path / "new" / "timerd.db"
        result = await cli("serve", "--port", str(port), "--db", db, timeout_s=REFUSAL_TIMEOUT_S)
    finally:
        taken.close()
    line = result.one_error_line()
    assert f"port {port}" in line, line
    assert "already in use" in line, line
    assert "listening" not in result.stdout
    assert not db.parent.exists()


@pytest.mark.usefixtures("open_umask")
async def test_folders_made_for_the_database_are_private_under_any_umask(
    daemon: DaemonStarter, tmp_path: Path
) -> None:
    db = tmp_path / "a" / "b" / "c" / "timerd.db"
    await daemon(db)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", db.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_start_says_how_to_stop_and_boot_counts_the_overdue(
    daemon: DaemonStarter, http: aiohttp.ClientSession, receiver: Receiver, tmp_path: Path
) -> None:
    db = tmp_path / "timerd.db"
    first = await daemon(db)
    line = await _logged(first, "press Ctrl+C to stop")
    assert first.url in line
    assert first.stdout_lines[0] == f"listening on {first.url}\n"  # still whole, for scripts
    ids = [await create_timer(http, first.url, seconds=3, url=receiver.url) for _ in range(3)]
    later = await create_timer(http, first.url, hours=1, url=receiver.url)
    due_at = max([(await get_timer(http, first.url, tid))["fire_at"] for tid in ids])
    assert await first.stop() == 0
    assert receiver.hits == []
    await asyncio.sleep(max(0.0, due_at - time.time()) + 0.1)  # a known instant, not a guess

    second = await daemon(db)
    assert "catching up on 3 timers" in await _logged(second, "catching up on")
    await receiver.wait_for(3)
    assert sorted(receiver.ids()) == sorted(ids)
    assert later not in receiver.ids()
    assert "catching up" not in first.log()  # nothing was overdue at the first boot


async def test_a_bad_swi_variable_is_ignored(daemon: DaemonStarter, tmp_path: Path) -> None:
    # an undocumented knob crashed the start with a traceback on a bad value; it is gone
    d = await daemon(tmp_path / "timerd.db", env={"SWI": "not-a-number"})
    assert d.running


async def test_a_clean_stop_waits_for_an_attempt_on_the_wire_past_grace_s(
    daemon: DaemonStarter, http: aiohttp.ClientSession, receiver: Receiver, tmp_path: Path
) -> None:
    answer_after_s = 2.0

    async def slow(hit: Hit) -> web.StreamResponse:
        await asyncio.sleep(answer_after_s)
        return web.Response(status=200)

    receiver.respond = slow
    db = tmp_path / "timerd.db"
    flags = ("--grace-s", "0.5", "--attempt-timeout-s", "5")
    first = await daemon(db, *flags)
    tid = await create_timer(http, first.url, seconds=0, url=receiver.url)
    await receiver.wait_for(1)  # the attempt is on the wire: the receiver holds it
    stopping = time.monotonic()
    assert await first.stop() == 0
    assert time.monotonic() - stopping >= answer_after_s - 0.5  # it waited for the answer
    assert "cut short" not in first.log()

    second = await daemon(db, *flags)
    timer = await get_timer(http, second.url, tid)
    assert (timer["status"], timer["attempts"]) == ("fired", 1)  # recorded: never due again
    assert len(receiver.hits) == 1
