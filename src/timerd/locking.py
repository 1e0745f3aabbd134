"""One daemon per database: an advisory lock on a file next to it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from timerd.errors import DatabaseLocked


class DatabaseLock:
    """An exclusive `flock` on `<db>.lock`, released when the process ends, however it ends."""

    def __init__(self, db_path: Path) -> None:
        real = db_path.resolve()  # a symlink or another spelling must find the same lock
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise DatabaseLocked naming the holder's pid."""
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

    def is_held_elsewhere(self) -> bool:
        """Tell whether another process holds the lock right now (without keeping it)."""
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

    def release(self) -> None:
        """Drop the lock; calling it twice is harmless."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
