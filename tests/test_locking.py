"""`DatabaseLock`: one writer per database file, whatever name or link it is reached by."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from timerd.errors import DatabaseLocked
from timerd.store import locking
from timerd.store.locking import DatabaseLock

# Another process looks at the locks, as a second daemon would.
_OTHER_PROCESS = """
import sys
from pathlib import Path
from timerd.store.locking import DatabaseLock
lock = DatabaseLock(Path(sys.argv[1]))
sys.exit(1 if lock.is_held_elsewhere() else 0)
"""


def _held_by_another_process(db: Path) -> bool:
    """Ask another process through a hard link: the database's own lock, not its name's."""
    probe = db.with_name("probe.db")
    if not probe.exists():
        os.link(db, probe)
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, str(probe)],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode in (0, 1), done.stderr.decode()
    return done.returncode == 1


@pytest.fixture
def held(tmp_path: Path) -> Iterator[DatabaseLock]:
    """The lock of tmp_path/timerd.db, taken (the empty database file is created with it)."""
    lock = DatabaseLock(tmp_path / "timerd.db")
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def test_a_hard_link_meets_the_same_lock(held: DatabaseLock, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    os.link(held.db, other)
    with pytest.raises(DatabaseLocked, match="in use by another timerd, under another name"):
        DatabaseLock(other).acquire()
    assert DatabaseLock(other).is_held_elsewhere()
    held.release()
    again = DatabaseLock(other)
    again.acquire()  # free once the holder let go
    again.release()


def test_a_symlink_meets_the_same_lock_and_names_the_holder(
    held: DatabaseLock, tmp_path: Path
) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(held.db)
    with pytest.raises(DatabaseLocked, match=f"in use by timerd pid {os.getpid()}"):
        DatabaseLock(link).acquire()


def test_sqlite_reads_and_writes_under_the_lock(held: DatabaseLock) -> None:
    # the lock is on a byte SQLite never uses: its own locks, in this process or another, pass
    conn = sqlite3.connect(held.db, isolation_level=None)
    try:
        assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    finally:
        conn.close()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO t VALUES (2)'); c.commit(); "
            "print(c.execute('SELECT count(*) FROM t').fetchone()[0])",
            str(held.db),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert done.stdout.strip() == "2", done.stderr
    assert _held_by_another_process(held.db)


def test_without_ofd_locks_hold_takes_back_what_a_close_dropped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # as on macOS: a POSIX lock, which any close of the file in this process drops
    monkeypatch.setattr(locking, "_OFD_SETLK", None)
    lock = DatabaseLock(tmp_path / "timerd.db")
    lock.acquire()
    try:
        assert _held_by_another_process(lock.db)
        sqlite3.connect(lock.db).close()  # what opening the store does once
        assert not _held_by_another_process(lock.db)
        lock.hold()
        assert _held_by_another_process(lock.db)
    finally:
        lock.release()
    assert not _held_by_another_process(tmp_path / "timerd.db")
