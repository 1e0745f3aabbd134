"""Real `timerd serve` subprocesses for restart, crash and fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

TIMERD = str(Path(sys.executable).with_name("timerd"))


class Daemon:
    """One `timerd serve --port 0` process on a given database, started and stopped on demand."""

    def __init__(
        self, db: Path, *args: str, env: dict[str, str] | None = None, log_dir: Path | None = None
    ) -> None:
        self.db = db
        self.args = list(args)
        self.env = {**os.environ, "TIMERD_LOG_LEVEL": "warning", **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.stderr_path = (log_dir or db.parent) / (db.name + ".stderr")
        self.starts = 0

    async def start(self, timeout_s: float = 20.0) -> str:
        """Start the daemon and return its base URL once it printed `listening on`."""
        self.starts += 1
        with self.stderr_path.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                TIMERD,
                "serve",
                "--port",
                "0",
                "--db",
                str(self.db),
                *self.args,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=self.env,
            )
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            line = (await self.proc.stdout.readline()).decode()
        if not line.startswith("listening on "):
            code = await self.proc.wait()
            raise RuntimeError(f"timerd exited {code}: {self.stderr()[-2000:]}")
        self.url = line.split("listening on ", 1)[1].strip()
        return self.url

    def stderr(self) -> str:
        """Return everything the daemon wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    async def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.kill()
        await self._reap()

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit code (SIGKILL if it overstays)."""
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout_s):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await self._reap()
        return code

    async def _reap(self) -> None:
        if self.proc is None:
            return
        await self.proc.wait()
        if self.proc.stdout is not None:
            with contextlib.suppress(Exception):
                await self.proc.stdout.read()
        transport = getattr(self.proc, "_transport", None)
        if transport is not None:
            transport.close()
        self.proc = None
