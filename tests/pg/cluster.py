"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl under a temporary folder.

It listens on 127.0.0.1 (a free port, password required) and on a unix socket inside its
own folder, nowhere else. As root, the server runs as the `postgres` user: initdb refuses
to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
PASSWORD_BYTES = 12
START_TIMEOUT_S = 60
BINDIR_VARIABLE = "TIMERD_PG_BINDIR"


class ClusterUnavailable(Exception):
    """No PostgreSQL server binaries here, or the cluster would not start."""


def find_bindir() -> Path | None:
    """Return the folder of `initdb` and `pg_ctl`, or None.

    TIMERD_PG_BINDIR names it when set (and only it is tried); otherwise PATH, then the
    newest of Debian's /usr/lib/postgresql/*/bin.
    """
    chosen = os.environ.get(BINDIR_VARIABLE)
    if chosen:
        named = Path(chosen)
        return named if (named / "initdb").exists() and (named / "pg_ctl").exists() else None
    on_path = shutil.which("initdb")
    if on_path is not None:
        resolved = Path(on_path).resolve().parent
        if (resolved / "pg_ctl").exists():
            return resolved
    versions = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    numbered = [b for b in versions if b.parent.name.isdigit() and (b / "pg_ctl").exists()]
    return max(numbered, key=lambda b: int(b.parent.name), default=None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgCluster:
    """A running throwaway cluster; `url(db)` names one of its databases."""

    bindir: Path
    root: Path
    port: int
    password: str
    started_in_s: float = 0.0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", *, with_password: bool = True) -> str:
        """Return a `postgresql://` URL for `database` over TCP on 127.0.0.1."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, bindir: Path) -> PgCluster:
        """Create and start a cluster; raise ClusterUnavailable with the reason if it fails."""
        started = time.perf_counter()
        as_postgres = os.geteuid() == 0
        root = Path(tempfile.mkdtemp(prefix="timerd-pg-"))
        cluster = cls(bindir, root, _free_port(), secrets.token_urlsafe(PASSWORD_BYTES))
        try:
            if as_postgres:
                try:
                    owner = pwd.getpwnam(SUPERUSER)
                except KeyError:
                    raise ClusterUnavailable(
                        f"running as root and there is no {SUPERUSER!r} user to run the server"
                    ) from None
                os.chown(root, owner.pw_uid, owner.pw_gid)
            pwfile = root / "pwfile"
            pwfile.write_text(cluster.password + "\n")
            if as_postgres:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            pwfile.chmod(0o600)
            cluster._run(
                "initdb",
                "-D",
                str(cluster.data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            )
            pwfile.unlink()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={cluster.port}",
                    f"-c unix_socket_directories={root}",
                    # a throwaway cluster: durability is not what these tests measure
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            cluster._run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-D",
                str(cluster.data),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
            )
        except BaseException:
            cluster.stop()
            raise
        cluster.started_in_s = time.perf_counter() - started
        return cluster

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
            except ClusterUnavailable:
                self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """Return the end of the server's log, for failure messages."""
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S + 10,
                check=False,
                cwd=self.root,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"{program} failed: {exc}") from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip().splitlines()[-3:]
            detail = " / ".join(output) or f"exit code {done.returncode}"
            tail = self.log_tail(5) if program == "pg_ctl" else ""
            raise ClusterUnavailable(f"{program} failed: {detail}\n{tail}".rstrip())
