"""Start-up: one daemon per database, a corrupt file is refused untouched, boot time at 100k."""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import (
    BULK_COUNT,
    CliResult,
    CliRunner,
    DaemonStarter,
    build_bulk_db,
    create_timer,
    db_files,
    get_timer,
    wait_healthy,
)
from tests.procs import Daemon, DaemonStartError

pytestmark = pytest.mark.e2e

BOOT_BOUND_S = 10.0
REFUSAL_TIMEOUT_S = 15.0
CLI_EXIT_TIMEOUT_S = 5.0


async def _serve_expecting_refusal(db: Path, home: Path) -> CliResult:
    """Run `timerd serve` on `db`, which must exit by itself; failing as soon as it listens."""
    d = Daemon(db, home=home)
    try:
        await d.start(timeout_s=REFUSAL_TIMEOUT_S)
    except DaemonStartError as exc:
        if exc.timed_out:
            raise AssertionError(f"timerd serve --db {db} neither listened nor exited") from None
        return CliResult(d.argv[1:], exc.returncode, exc.stdout, exc.stderr)
    await d.kill9()
    raise AssertionError(f"timerd serve --db {db} was not refused: it started ({d.url})")


async def test_sigterm_as_soon_as_it_listens_exits_0(daemon: DaemonStarter, tmp_path: Path) -> None:
    # `listening on` is the readiness signal: a supervisor may stop it right away, and a
    # SIGTERM must then be a clean stop (exit 0), never the default action (killed, -15)
    codes = []
    for n in range(6):
        d = await daemon(tmp_path / f"x{n}.db", ready=False)
        codes.append(await d.stop())
    assert codes == [0] * len(codes)


async def test_second_daemon_on_the_same_database_is_refused(
    daemon: DaemonStarter, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    db = tmp_path / "x.db"
    first = await daemon(db)
    tid = await create_timer(http, first.url, hours=1, url="http://127.0.0.1:9/hook")

    second = await _serve_expecting_refusal(db, tmp_path)
    line = second.one_error_line()
    assert "in use" in line
    assert str(db) in line
    assert str(first.proc.pid) in line  # says who holds it
    assert "listening" not in second.stdout

    # the same file by another spelling of its path
    (tmp_path / "sub").mkdir()
    relative = await _serve_expecting_refusal(tmp_path / "." / "sub" / ".." / "x.db", tmp_path)
    assert "in use" in relative.one_error_line()

    # the first daemon is unharmed
    assert first.running
    assert (await get_timer(http, first.url, tid))["status"] == "pending"
    assert await first.stop() == 0


async def test_second_daemon_through_a_symlink_to_the_database_is_refused(
    daemon: DaemonStarter, tmp_path: Path
) -> None:
    db = tmp_path / "x.db"
    await daemon(db)
    link = tmp_path / "link.db"
    link.symlink_to(db)
    # two daemons on one file would both deliver every timer: duplicates in normal operation
    second = await _serve_expecting_refusal(link, tmp_path)
    assert "in use" in second.one_error_line()


def _corrupt(path: Path, how: str, template: Path) -> None:
    rng = random.Random(20261123)
    if how == "random-bytes":
        path.write_bytes(rng.randbytes(64 * 1024))
    else:  # a real timerd database whose pages after the 100-byte header are noise
        data = bytearray(template.read_bytes())
        data[100:] = rng.randbytes(len(data) - 100)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["random-bytes", "sqlite-header-then-noise"])
async def test_start_on_a_corrupt_database_fails_and_leaves_the_file_unchanged(
    tmp_path: Path, how: str
) -> None:
    template = tmp_path / "good.db"
    build_bulk_db(template, 200, mixed=True)
    db = tmp_path / "x.db"
    _corrupt(db, how, template)
    before = db.read_bytes()

    result = await _serve_expecting_refusal(db, tmp_path)
    line = result.one_error_line()
    assert str(db) in line
    assert "listening" not in result.stdout
    assert db.read_bytes() == before, "timerd changed a database it refused"
    assert [p.name for p in db_files(db)] == ["x.db"]


async def test_reading_a_corrupt_or_foreign_database_fails_with_one_line_and_exits(
    cli: CliRunner, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(random.Random(7).randbytes(64 * 1024))
    foreign = tmp_path / "foreign.db"  # a fine SQLite file, just not timerd's
    with contextlib.closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    for db in (corrupt, foreign):
        before = db.read_bytes()
        for args in (("list",), ("show", "abc"), ("export",)):
            try:
                result = await cli(*args, "--db", db, timeout_s=CLI_EXIT_TIMEOUT_S)
            except AssertionError:
                raise AssertionError(
                    f"timerd {args[0]} --db {db.name} did not exit within {CLI_EXIT_TIMEOUT_S} s"
                ) from None
            assert str(db) in result.one_error_line()
        assert db.read_bytes() == before


async def test_boot_time_with_100k_pending_timers(
    bulk_pending_db: Path,
    daemon: DaemonStarter,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    report: Callable[[str], None],
) -> None:
    empty = await daemon(tmp_path / "empty.db", ready=False)
    await wait_healthy(http, empty.url)
    empty_s = time.monotonic() - empty.spawned_mono
    assert await empty.stop() == 0

    db = tmp_path / "x.db"
    shutil.copyfile(bulk_pending_db, db)
    d = await daemon(db, ready=False)
    await wait_healthy(http, d.url, timeout_s=BOOT_BOUND_S)
    healthy_s = time.monotonic() - d.spawned_mono
    listening_s = d.listening_mono - d.spawned_mono
    report(
        f"boot with {BULK_COUNT} pending timers: 'listening' after {listening_s:.2f} s, "
        f"/healthz 200 after {healthy_s:.2f} s (empty database: {empty_s:.2f} s)"
    )
    assert healthy_s < BOOT_BOUND_S

    # it serves that database: the earliest bulk timer is there and still pending
    async with http.get(f"{d.url}/timers", params={"limit": "1", "status": "pending"}) as resp:
        (first,) = (await resp.json())["timers"]
    assert first["url"].endswith("?n=0")
    assert await d.stop() == 0
