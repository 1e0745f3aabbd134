"""Server processes for the benchmark: start fresh, pin to a core, wait for ready, measure, stop.

Every target prints `listening on http://127.0.0.1:PORT` as its first stdout line once it
answers HTTP. Output goes to files in the run's temp dir (never a pipe nobody drains), and
the harness polls the file for that line with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_CPU = 0
CLIENT_CPU = 1


def can_pin() -> bool:
    """Pin only where there are two cores to split and `taskset` exists."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pin_self(cpu: int) -> bool:
    """Pin the harness (load generator) to `cpu`; return whether it worked."""
    if not can_pin():
        return False
    os.sched_setaffinity(0, {cpu})
    return True


def pinned(argv: list[str], cpu: int) -> list[str]:
    """Prefix `argv` with `taskset -c cpu` where pinning is possible."""
    return ["taskset", "-c", str(cpu), *argv] if can_pin() else argv


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per-core (busy, total) jiffies from /proc/stat, to see who else used the cores."""
    times: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(x) for x in fields[:8]]
                idle = values[3] + values[4]
                times[name] = (sum(values) - idle, sum(values))
    return times


def busy_since(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Fraction of each core that was busy (anyone's work) since `before`."""
    after = cpu_times()
    out: dict[str, float] = {}
    for name, (busy0, total0) in before.items():
        busy1, total1 = after.get(name, (busy0, total0))
        if total1 > total0:
            out[name + "_busy"] = round((busy1 - busy0) / (total1 - total0), 2)
    return out


@dataclass
class Proc:
    """One started server: its port, pid, and when it was started and became ready."""

    name: str
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    started: float
    port: int = 0
    listening_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def memory_mb(self) -> dict[str, float]:
        """Return VmRSS and VmHWM (peak RSS) in MiB from /proc, or {} where absent."""
        status = Path(f"/proc/{self.pid}/status")
        if not status.exists():
            return {}
        values: dict[str, float] = {}
        for line in status.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key.lower() + "_mb"] = round(int(rest.split()[0]) / 1024, 1)
        return values

    def cpu_s(self) -> float:
        """Return the CPU seconds (user + system) the process has used so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr_tail(self, lines: int = 20) -> str:
        text = self.err_path.read_text(errors="replace") if self.err_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL; return the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


async def start(
    name: str,
    argv: list[str],
    workdir: Path,
    *,
    cpu: int | None,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 30.0,
) -> Proc:
    """Start `argv` and wait (bounded) for its `listening on` line."""
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    full_env = {**os.environ, **(env or {})}
    command = pinned(argv, cpu) if cpu is not None else argv
    started = time.time()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        popen = await asyncio.to_thread(
            subprocess.Popen, command, stdout=out, stderr=err, env=full_env
        )
    proc = Proc(name, popen, out_path, err_path, started)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        first = out_path.read_bytes().split(b"\n", 1)
        if len(first) == 2 and first[0].startswith(b"listening on "):
            proc.port = int(first[0].rsplit(b":", 1)[1])
            proc.listening_s = time.time() - started
            return proc
        if popen.poll() is not None:
            break
        await asyncio.sleep(0.002)
    proc.stop()
    raise RuntimeError(f"{name} did not start: {proc.stderr_tail()}")


async def http(
    port: int, method: str, path: str, body: bytes = b"", timeout_s: float = 5.0
) -> tuple[int, bytes]:
    """One request on a fresh connection: for control calls, not for load."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            raw = await reader.read()
        finally:
            writer.close()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    return int(head_bytes[9:12]), payload


async def get_json(port: int, path: str) -> Any:
    """GET a JSON document from a control endpoint."""
    status, payload = await http(port, "GET", path)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    return json.loads(payload)


async def wait_healthy(port: int, timeout_s: float, step_s: float = 0.005) -> float | None:
    """Poll `/healthz` until 200; return the wall time it first answered, or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status, _ = await http(port, "GET", "/healthz", timeout_s=1.0)
        except (OSError, TimeoutError):
            status = 0
        if status == 200:
            return time.time()
        await asyncio.sleep(step_s)
    return None
