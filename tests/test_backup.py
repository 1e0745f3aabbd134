"""`backup_database`: an online copy with SQLite's backup API while the daemon keeps writing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from tests.waiting import eventually
from timerd.cli.group import cli
from timerd.config import Settings
from timerd.errors import DatabaseError
from timerd.models import Timer, new_id
from timerd.store import SqliteStore
from timerd.store.backup import backup_database, backup_target
from timerd.store.locking import DatabaseLock

Client = TestClient[Any, Any]


def _ids_in(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in conn.execute("SELECT id FROM timers")}
    finally:
        conn.close()


async def test_backup_while_the_daemon_writes_holds_every_acknowledged_timer(
    api: Client, settings: Settings, tmp_path: Path
) -> None:
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            resp = await api.post(
                "/timers/batch",
                json={"timers": [{"seconds": 3600, "url": "http://127.0.0.1:9/h"}] * 20},
            )
            assert resp.status == 201
            acknowledged.extend((await resp.json())["ids"])

    task = asyncio.create_task(writer())
    try:
        for round_no in range(5):
            wanted = (round_no + 1) * 100
            await eventually(lambda: len(acknowledged) >= wanted, f"{wanted} creates", 30, 0.01)  # noqa: B023
            before = set(acknowledged)  # every 201 answered before the backup started
            target = tmp_path / "backups" / f"copy-{round_no}.db"
            target.parent.mkdir(exist_ok=True)
            result = await asyncio.to_thread(backup_database, settings.db, target)
            assert result.path == target
            assert result.size_bytes == target.stat().st_size > 0
            ids = _ids_in(target)
            assert before <= ids
            assert result.timers == len(ids)
            assert stat.S_IMODE(target.stat().st_mode) == 0o600
            assert not (target.parent / f"{target.name}-wal").exists()
    finally:
        stop.set()
        await task
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
        f"copy-{n}.db" for n in range(5)
    ]


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


async def _database_with(path: Path, count: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        timers = [
            Timer(id=new_id(), url="http://x/", fire_at=1e9 + i, created_at=1e9)
            for i in range(count)
        ]
        await store.insert_timers(timers)
    finally:
        await store.close()


async def test_backup_of_a_stopped_daemon_database(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    await _database_with(db, 7)
    result = backup_database(db, tmp_path / "copy.db")
    assert result.timers == 7
    assert len(_ids_in(result.path)) == 7
    # the copy is itself a working timerd database
    store = SqliteStore(result.path)
    await store.open()
    try:
        assert sum((await store.count_by_status()).values()) == 7
    finally:
        await store.close()


async def test_backup_replaces_an_old_copy_atomically(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    await _database_with(db, 3)
    target = tmp_path / "copy.db"
    target.write_bytes(b"old copy")
    assert backup_database(db, target, force=True).timers == 3
    assert len(_ids_in(target)) == 3
    assert _leftovers(tmp_path) == []


async def test_an_existing_target_is_kept_without_force(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    await _database_with(db, 1)
    target = tmp_path / "copy.db"
    target.write_bytes(b"keep me")
    with pytest.raises(DatabaseError, match="already exists; add --force"):
        backup_database(db, target)
    assert target.read_bytes() == b"keep me"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "name", ["timerd.db", "timerd.db-wal", "timerd.db-shm", "timerd.db.lock", "timerd.db.addr"]
)
async def test_never_the_databases_own_files_even_with_force(tmp_path: Path, name: str) -> None:
    db = tmp_path / "timerd.db"
    store = SqliteStore(db)
    await store.open()  # a live database: its -wal and -shm exist
    try:
        DatabaseLock(db).path.write_bytes(b"123")
        own = tmp_path / name
        before = own.read_bytes() if own.exists() else None
        with pytest.raises(DatabaseError, match="the backup would overwrite the "):
            backup_database(db, own, force=True)
        assert (own.read_bytes() if own.exists() else None) == before
    finally:
        await store.close()


async def test_own_files_are_known_by_identity_not_only_by_name(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    store = SqliteStore(db)
    await store.open()
    try:
        wal = tmp_path / "timerd.db-wal"
        hard = tmp_path / "elsewhere.db"
        os.link(wal, hard)  # the live -wal under a name that says nothing
        soft = tmp_path / "copy.db"
        soft.symlink_to(db)
        for target in (hard, soft, tmp_path / "sub" / ".." / "timerd.db-shm"):
            with pytest.raises(DatabaseError, match="the backup would overwrite the "):
                backup_database(db, target, force=True)
        assert os.stat(hard).st_ino == os.stat(wal).st_ino
        assert soft.is_symlink()
    finally:
        await store.close()


def test_the_cli_refuses_in_one_line_and_replaces_with_force(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    asyncio.run(_database_with(db, 2))
    target = tmp_path / "copy.db"
    target.write_bytes(b"old copy")
    runner = CliRunner()
    refused = runner.invoke(cli, ["backup", str(target), "--db", str(db)])
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        f"timerd: error: {target} already exists; add --force to replace it"
    ]
    assert target.read_bytes() == b"old copy"
    wal = runner.invoke(cli, ["backup", f"{db}-wal", "--db", str(db), "--force"])
    assert wal.exit_code == 1
    assert len(wal.stderr.strip().splitlines()) == 1
    assert "-wal file" in wal.stderr
    done = runner.invoke(cli, ["backup", str(target), "--db", str(db), "--force"])
    assert done.exit_code == 0, done.output
    assert len(_ids_in(target)) == 2


async def test_a_folder_target_gets_a_dated_file(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    await _database_with(db, 1)
    folder = tmp_path / "backups"
    folder.mkdir()
    result = backup_database(db, folder)
    assert result.path.parent == folder
    assert result.path.name.startswith("timerd-")
    assert result.path.suffix == ".db"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(0))
    assert backup_target(folder, now=0).name == f"timerd-{stamp}.db"


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no database at"):
        backup_database(tmp_path / "missing.db", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


def test_a_file_that_is_not_a_timerd_database_leaves_the_target_alone(tmp_path: Path) -> None:
    source = tmp_path / "other.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    target = tmp_path / "copy.db"
    target.write_bytes(b"keep me")
    with pytest.raises(DatabaseError, match="not a timerd database"):
        backup_database(source, target, force=True)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "other.db"]


async def test_refuses_to_overwrite_the_database_itself(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    await _database_with(db, 1)
    with pytest.raises(DatabaseError, match="overwrite the database itself"):
        backup_database(db, tmp_path / "." / "timerd.db")


async def test_missing_target_folder_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "timerd.db"
    await _database_with(db, 1)
    with pytest.raises(DatabaseError, match="no folder"):
        backup_database(db, tmp_path / "nope" / "copy.db")
