"""One daemon per database: a lock on the database file itself, and one on a file next to it.

`<real path>.lock` is an exclusive `flock` that records the holder's pid, so a second daemon on
the same path can name the first. A name is not the file, though: a hard link, or another
mount of the folder, reaches the same database under a name with another `.lock`. So the
daemon also write-locks one byte of the database file, far past any page or lock byte SQLite
uses: every name of the file meets that lock.

That byte lock is an open file description (OFD) lock where the system has them (Linux): OFD
locks never touch SQLite's own per-process POSIX locks on other bytes, and SQLite closing one
of its descriptors does not drop them. Where there are none it is a POSIX lock, which any close
of the file in this process drops; `hold()` takes it again once the store has opened. Not an
`flock` on the database: on BSD and macOS, and over NFS or SMB on Linux, an `flock` covers the
whole file and collides with SQLite's byte-range locks.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

from timerd.errors import DatabaseLocked

IDENTITY_BYTE = 1 << 50
"""The byte of the database file locked: past the largest file SQLite writes (2**48 bytes)."""

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None)
_BUSY = (errno.EAGAIN, errno.EACCES)


class DatabaseLock:
    """The exclusive right to write one database, released when the process ends, however."""

    def __init__(self, db_path: Path) -> None:
        self.db = db_path
        real = db_path.resolve()  # a symlink or another spelling must find the same lock
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None
        self._db_fd: int | None = None

    def acquire(self) -> None:
        """Take both locks (creating the empty database file if missing) or raise DatabaseLocked."""
        self._lock_name()
        try:
            self._lock_identity()
        except BaseException:
            self.release()
            raise

    def hold(self) -> None:
        """Take the database file's lock again if a close in this process dropped it.

        Only POSIX locks are dropped that way (SQLite closes a connection while it opens the
        store); where OFD locks exist this never has anything to do.
        """
        if self._db_fd is not None and not _set_identity_lock(self._db_fd, fcntl.F_WRLCK):
            raise self._in_use_elsewhere()

    def is_held_elsewhere(self) -> bool:
        """Tell whether another process holds either lock right now (without keeping them)."""
        return self._name_held_elsewhere() or self._identity_held_elsewhere()

    def release(self) -> None:
        """Drop both locks; calling it twice is harmless."""
        if self._db_fd is not None:
            os.close(self._db_fd)  # after the store closed: this also ends any POSIX lock
            self._db_fd = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _lock_name(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DatabaseLocked(
                f"database {self.path.with_suffix('')} is in use by timerd pid {holder}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def _lock_identity(self) -> None:
        fd = os.open(self.db, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            locked = _set_identity_lock(fd, fcntl.F_WRLCK)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            raise self._in_use_elsewhere()
        self._db_fd = fd

    def _in_use_elsewhere(self) -> DatabaseLocked:
        return DatabaseLocked(
            f"database {self.db} is in use by another timerd, under another name "
            "(a hard link or another mount of the same file)"
        )

    def _name_held_elsewhere(self) -> bool:
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _identity_held_elsewhere(self) -> bool:
        try:
            fd = os.open(self.db, os.O_RDONLY)
        except OSError:
            return False  # no database file (or none readable): nobody serves it
        try:
            if _OFD_GETLK is not None:
                answer = fcntl.fcntl(fd, _OFD_GETLK, _flock_struct(fcntl.F_WRLCK))
                kind: int = struct.unpack_from("h", answer)[0]
                return kind != fcntl.F_UNLCK
            # POSIX F_GETLK's struct differs between systems: ask by trying a read lock
            # instead (it meets a writer's lock; closing the file drops it again)
            return not _set_identity_lock(fd, fcntl.F_RDLCK)
        finally:
            os.close(fd)


def _flock_struct(kind: int) -> bytes:
    """Return a Linux `struct flock` for IDENTITY_BYTE (the only layout OFD locks come with)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, IDENTITY_BYTE, 1, 0)


def _set_identity_lock(fd: int, kind: int) -> bool:
    """Take the read or write lock on IDENTITY_BYTE without waiting; False if another holds it."""
    try:
        if _OFD_SETLK is not None:
            fcntl.fcntl(fd, _OFD_SETLK, _flock_struct(kind))
        else:
            exclusive = fcntl.LOCK_EX if kind == fcntl.F_WRLCK else fcntl.LOCK_SH
            fcntl.lockf(fd, exclusive | fcntl.LOCK_NB, 1, IDENTITY_BYTE, os.SEEK_SET)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True
