"""The address a running daemon listens on, recorded beside its database for the CLI.

`timerd serve --db other.db --port 0` writes `other.db.addr` (JSON: url, pid, db) once it
listens and removes it on a clean stop, so `timerd add ... --db other.db` finds that daemon.
The daemon holds an exclusive `flock` on the record for as long as it runs: a record nobody
holds was left by a daemon that died, and is never taken for a live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".addr"


def record_path(db: Path) -> Path:
    """Return where the daemon of `db` records its address (beside the file, symlinks resolved)."""
    real = db.expanduser().resolve()
    return real.with_name(real.name + SUFFIX)


def connect_url(host: str, port: int) -> str:
    """Return the URL a local client reaches a daemon bound to `host`:`port` by."""
    if host in ("0.0.0.0", ""):  # all interfaces: loopback is one of them
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True, slots=True)
class RecordedAddress:
    """What a record says, and whether the daemon that wrote it still runs."""

    url: str
    pid: int
    path: Path
    live: bool


class AddressRecord:
    """The running daemon's own record: published once it listens, withdrawn on a clean stop."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def publish(cls, db: Path, url: str) -> AddressRecord:
        """Write the record for `db` and hold its lock; a failure is logged, never fatal."""
        path = record_path(db)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd: int | None = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # locked before it is visible under its name
            data = {"url": url, "pid": os.getpid(), "db": str(db)}
            os.write(fd, json.dumps(data).encode() + b"\n")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot record the address in %s: %s", path, exc.strerror)
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return cls(path, None)
        return cls(path, fd)

    def withdraw(self) -> None:
        """Remove the record if it is still ours; calling it twice is harmless."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def read_record(db: Path) -> RecordedAddress | None:
    """Return the record of `db`'s daemon, or None if there is none or it cannot be read."""
    path = record_path(db)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            live = False  # nobody holds it: its daemon is gone
        except BlockingIOError:
            live = True
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
        return RecordedAddress(str(data["url"]), int(data["pid"]), path, live)
    except (ValueError, KeyError, TypeError):
        return None
