"""Online backup: copy the database with SQLite's backup API while the daemon keeps writing.

The copy is read in one step from its own read-only connection. In WAL mode a reader sees
one consistent snapshot and never blocks the daemon's writer, so the backup holds every
transaction committed before it began (every acknowledged timer) and nothing half-written.
It is written to a temporary file beside the target, checked, synced and renamed into place,
so the target path is always either the old file or a complete new copy. An existing target
is replaced only when asked (`force`), and never when it is one of the database's own files:
renamed over the live `-wal`, a copy would become the daemon's log.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from timerd.errors import DatabaseError
from timerd.store.address_file import record_path
from timerd.store.locking import DatabaseLock

BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup wrote."""

    path: Path
    size_bytes: int
    timers: int
    duration_s: float


def backup_target(target: Path, *, now: float | None = None) -> Path:
    """Return the file to write: `target` itself, or a dated file inside it if it is a folder."""
    if target.is_dir():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        return target / f"timerd-{stamp}.db"
    return target


def backup_database(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the timerd database at `source` to `target` (mode 0600) and return what was written.

    Blocking. Raises DatabaseError when the source is missing or not a timerd database, the
    target exists (unless `force`) or is one of the database's own files (always), the
    target folder is missing or not writable, or the copy fails its check; the target is
    left as it was in every failure.
    """
    source = source.expanduser()
    target = backup_target(target.expanduser())
    if not source.is_file():
        raise DatabaseError(f"no database at {source}")
    own = _own_file(source, target)
    if own is not None:
        raise DatabaseError(f"the backup would overwrite {own}: {target}")
    if target.exists() and not force:
        raise DatabaseError(f"{target} already exists; add --force to replace it")
    if not target.parent.is_dir():
        raise DatabaseError(f"no folder {target.parent} to write the backup in")
    started = time.monotonic()
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise DatabaseError(f"cannot write in {target.parent}: {exc.strerror}") from None
    os.close(fd)  # mkstemp made it 0600; SQLite writes into it and keeps the mode
    tmp = Path(tmp_name)
    try:
        timers = _copy(source, tmp)
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)
    return BackupResult(target, target.stat().st_size, timers, time.monotonic() - started)


def _own_file(source: Path, target: Path) -> str | None:
    """Name which of the database's own files `target` is (by path or by file), or None."""
    own = [
        ("the database itself", source),
        ("the database's lock", DatabaseLock(source).path),
        ("the daemon's address record", record_path(source)),
    ]
    for spelling in (source, source.resolve()):  # SQLite names them after either
        for suffix in ("-wal", "-shm"):
            companion = spelling.with_name(spelling.name + suffix)
            own.append((f"the database's {suffix} file", companion))
    target_real = target.resolve()
    target_id = _identity(target)
    for what, path in own:
        if path.resolve() == target_real:
            return what
        if target_id is not None and _identity(path) == target_id:
            return what  # the same file under another name: a hard link, another mount
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _copy(source: Path, dest: Path) -> int:
    """Back `source` up into the empty file `dest`; check it; return how many timers it holds."""
    try:
        src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {source}: {exc}") from None
    try:
        src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _count_timers(src, source)
        out = sqlite3.connect(dest, isolation_level=None)
        try:
            # one step: a single read snapshot; stepping would restart on every daemon commit
            src.backup(out)
            # a self-contained single file: no -wal or -shm beside the copy
            out.execute("PRAGMA journal_mode = DELETE")
            check = out.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise DatabaseError(f"the copy of {source} failed its check: {check}")
            return _count_timers(out, source)
        finally:
            out.close()
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot back up {source}: {exc}") from None
    finally:
        src.close()


def _count_timers(conn: sqlite3.Connection, source: Path) -> int:
    try:
        return int(conn.execute("SELECT count(*) FROM timers").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{source} is not a timerd database: {exc}") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform lets a folder be opened and synced
        _fsync(path)
