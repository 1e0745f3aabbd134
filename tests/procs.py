"""Real `timerd serve` child processes, for the e2e and the reliability tests.

`Daemon(db, *flags)` is one daemon on one database. `await daemon.start()` runs
`timerd serve --port 0 --db DB FLAGS...` and returns once the child printed its
`listening on http://HOST:PORT` line (its readiness signal), within a deadline; a child that
exits or stays silent instead raises DaemonStartError, and is never left running. `start()`
again after `stop()` or `kill9()` restarts it on the same database.

Both output streams are read as they come, into `stdout_lines` and `stderr_lines` (every run of
the object, in order), so a chatty daemon never blocks on a full pipe. The child gets a clean
environment: no `TIMERD_*` variable of the caller's and private XDG folders, so a developer's
own config file never leaks in.

`async with Daemon(db) as daemon:` starts it and makes sure it is stopped on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

TIMERD = str(Path(sys.executable).with_name("timerd"))
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0

FAST_FLAGS = ("--backoff-base-s", "0.05", "--backoff-max-s", "0.2", "--grace-s", "5")
"""Fast retries and a short grace, for tests that wait on deliveries."""
QUIET = {"TIMERD_LOG_LEVEL": "warning"}
"""Environment for a daemon whose every delivery would otherwise log a line."""


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Return os.environ without any TIMERD_* and with private XDG folders under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMERD_")}
    env["XDG_CONFIG_HOME"] = str(home / "xdg-config")
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    env.update(extra)
    return env


class DaemonStartError(RuntimeError):
    """`timerd serve` exited, or printed no `listening on` line in time, instead of starting."""

    def __init__(
        self, reason: str, *, returncode: int, stdout: str, stderr: str, timed_out: bool
    ) -> None:
        tail = stderr[-2000:].rstrip()
        super().__init__(
            f"timerd serve {reason} (exit {returncode})" + (f"\n{tail}" if tail else "")
        )
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out


class Daemon:
    """One `timerd serve --port 0 --db DB FLAGS...` child process, started and stopped on demand.

    `env` adds variables to the clean environment; `home` holds its XDG folders (default: the
    database's folder; nothing is written there; required for a PostgreSQL URL `db`).
    """

    def __init__(
        self,
        db: Path | str,
        *flags: str,
        env: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> None:
        self.db = db
        self.argv = (TIMERD, "serve", "--port", "0", "--db", str(db), *flags)
        if home is None and not isinstance(db, Path):
            raise ValueError("a PostgreSQL URL has no folder: give home")
        self.env = clean_env(home or Path(db).parent, **(env or {}))
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        """Base URL of the current run, from its `listening on` line."""
        self.starts = 0
        self.spawned_mono = 0.0
        """time.monotonic() just before the current run was spawned."""
        self.listening_mono = 0.0
        """time.monotonic() when its `listening on` line was read."""
        self.listening_at = 0.0
        """Wall-clock instant (time.time()) its `listening on` line was read."""
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._drains: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        """Tell whether the current run has not exited yet."""
        return self.proc is not None and self.proc.returncode is None

    def log(self) -> str:
        """Return everything the daemon wrote to stderr so far, over all its runs."""
        return "".join(self.stderr_lines)

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Spawn it and return once it printed `listening on` (DaemonStartError if it did not)."""
        if self.running:
            raise RuntimeError(f"timerd on {self.db} is already running")
        if self._drains:
            await self.wait()
        self.starts += 1
        self.url = ""
        out_from, err_from = len(self.stdout_lines), len(self.stderr_lines)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self.spawned_mono = time.monotonic()
        self.proc = proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._drains = [asyncio.create_task(_drain(proc.stderr, self.stderr_lines))]
        first = ""
        timed_out = False
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    first = (await proc.stdout.readline()).decode(errors="replace")
            except TimeoutError:
                timed_out = True
            self.listening_mono, self.listening_at = time.monotonic(), time.time()
            if first:
                self.stdout_lines.append(first)
            self._drains.append(asyncio.create_task(_drain(proc.stdout, self.stdout_lines)))
        except BaseException:  # cancelled: leave no process behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        if first.startswith("listening on "):
            self.url = first.removeprefix("listening on ").strip()
            return self

        if not timed_out and not first:
            # stdout closed: it is exiting by itself, so let it, to report its own exit code
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(max(deadline, loop.time() + 5.0)):
                    await proc.wait()
        if proc.returncode is None:  # silent, or printing something else: it will not start
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        returncode = await self.wait()
        if timed_out:
            reason = f"printed no `listening on` line within {timeout_s} s"
        elif first:
            reason = f"printed {first.strip()!r} instead of `listening on`"
        else:
            reason = "exited without listening"
        raise DaemonStartError(
            reason,
            returncode=returncode,
            stdout="".join(self.stdout_lines[out_from:]),
            stderr="".join(self.stderr_lines[err_from:]),
            timed_out=timed_out,
        )

    async def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for the current run to exit and its pipes to drain; return the exit code."""
        proc = self._started()
        async with asyncio.timeout(timeout_s):
            returncode = await proc.wait()
            await asyncio.gather(*self._drains)
        return returncode

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to `timeout_s`; return the exit code (SIGKILL and fail if it hangs)."""
        proc = self._started()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            return await self.wait(timeout_s)
        except TimeoutError:
            await self.kill9()
            raise AssertionError(
                f"timerd on {self.db} did not stop within {timeout_s} s of SIGTERM"
            ) from None

    async def kill9(self) -> int:
        """SIGKILL (no shutdown code runs) and wait; return the exit code (-9)."""
        proc = self._started()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        return await self.wait()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running:
            await self.stop()
        elif self.proc is not None:
            await self.wait()

    def _started(self) -> asyncio.subprocess.Process:
        if self.proc is None:
            raise RuntimeError(f"timerd on {self.db} was never started")
        return self.proc


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))
