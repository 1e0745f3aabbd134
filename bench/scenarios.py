"""The HTTP scenarios of issues 4 and 9: create, get, batch, burst, steady and live.

Each takes a fresh server on a fresh database (see `Bench.server`) and returns one flat dict
of figures. Every loop is bounded by a count and a deadline; sizes come from `Sizes`, so
`--smoke` runs the same code on tiny numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loadgen
import procs
from targets import BENCH, Target

if TYPE_CHECKING:
    from pgcluster import BenchCluster

FAR = {"hours": 8760, "url": "http://127.0.0.1:9/never"}
"""A create body due in a year: creates that must not fire during the run."""


@dataclass(frozen=True)
class Sizes:
    """Every count and duration the scenarios use."""

    connections: int = 64
    warmup_s: float = 1.0
    create_s: float = 10.0
    get_s: float = 10.0
    get_ids: int = 2_000
    burst: int = 20_000
    steady_rate: float = 2_000
    steady_s: float = 10.0
    live_rate: float = 1_000
    live_s: float = 10.0
    live_delay_s: float = 2.0
    probe_rate: float = 100
    batch_s: float = 10.0
    batch_items: int = 1_000
    batch_connections: int = 4
    catchup: int = 100_000
    catchup_probe_rate: float = 200
    scale: tuple[int, ...] = (1_000_000, 10_000_000)
    scale_base: int = 10_000
    scale_due: int = 1_000
    stall_s: float = 10.0
    """Give up waiting for deliveries after this long without a new one."""


FULL = Sizes()
SMOKE = Sizes(
    warmup_s=0.2,
    create_s=0.5,
    get_s=0.5,
    get_ids=100,
    burst=200,
    steady_rate=200,
    steady_s=1.0,
    live_rate=100,
    live_s=1.0,
    live_delay_s=1.0,
    probe_rate=50,
    batch_s=0.5,
    batch_items=100,
    catchup=1_000,
    catchup_probe_rate=50,
    scale=(),
    scale_due=50,
    stall_s=5.0,
)


@dataclass
class Bench:
    """What every scenario needs: sizes and a place for fresh databases and logs."""

    sizes: Sizes
    workdir: Path
    pg: BenchCluster | None = None
    """The throwaway PostgreSQL, started only when a PostgreSQL target runs."""

    def fresh_dir(self, label: str) -> Path:
        path = self.workdir / f"{label}-{time.monotonic_ns()}"
        path.mkdir(parents=True)
        return path

    @contextlib.asynccontextmanager
    async def server(
        self, target: Target, label: str, ready_timeout_s: float = 60.0
    ) -> AsyncIterator[procs.Proc]:
        """Start `target` pinned to the server core on a fresh database; stop it after."""
        folder = self.fresh_dir(f"{label}-{target.name}")
        proc = await procs.start(
            target.name,
            target.command(folder / "bench.db"),
            folder,
            cpu=procs.SERVER_CPU,
            env=target.env,
            ready_timeout_s=ready_timeout_s,
        )
        try:
            yield proc
        finally:
            code = proc.stop()
            proc.extra["exit_code"] = code

    @contextlib.asynccontextmanager
    async def receiver(self) -> AsyncIterator[procs.Proc]:
        """Start a webhook receiver pinned to the client core."""
        folder = self.fresh_dir("receiver")
        argv = [sys.executable, str(BENCH / "receiver.py"), "--max-seconds", "3600"]
        proc = await procs.start("receiver", argv, folder, cpu=procs.CLIENT_CPU)
        try:
            yield proc
        finally:
            proc.stop()


def hook(receiver: procs.Proc) -> str:
    return f"http://127.0.0.1:{receiver.port}/hook"


def creates(port: int, body: dict[str, Any]) -> bytes:
    return loadgen.post_json("/timers", f"127.0.0.1:{port}", body)


async def measured(proc: procs.Proc, work: Any) -> tuple[Any, float]:
    """Await `work`; return its result and the server's CPU use as a fraction of a core."""
    cpu0, t0 = proc.cpu_s(), time.perf_counter()
    result = await work
    return result, round((proc.cpu_s() - cpu0) / (time.perf_counter() - t0), 3)


def per_cpu(rate: float, cpu: float) -> float | None:
    """Work per CPU-second of the server.

    Other jobs on the shared machine take turns on the server's core, so a server may get a
    third of it in one run and all of it in the next; rate per CPU-second it actually got
    is the steadier figure for CPU-bound servers (it flatters one that waits on the disk).
    """
    return round(rate / cpu, 1) if cpu > 0.05 else None


async def warm_rate(b: Bench, proc: procs.Proc) -> float:
    """Warm the server up with far-future creates; return its create rate (at least 50/s)."""
    res = await loadgen.run_for(
        "127.0.0.1",
        proc.port,
        [creates(proc.port, FAR)],
        connections=b.sizes.connections,
        duration_s=b.sizes.warmup_s,
    )
    return max(50.0, res.rate)


async def create(b: Bench, target: Target) -> dict[str, Any]:
    """POST /timers at 64 connections for a fixed time, timers far in the future."""
    async with b.server(target, "create") as proc:
        await warm_rate(b, proc)
        res, cpu = await measured(
            proc,
            loadgen.run_for(
                "127.0.0.1",
                proc.port,
                [creates(proc.port, FAR)],
                connections=b.sizes.connections,
                duration_s=b.sizes.create_s,
            ),
        )
    out = res.summary()
    return {**out, "server_cpu": cpu, "per_cpu_s": per_cpu(out["rate"], cpu)}


async def get(b: Bench, target: Target) -> dict[str, Any]:
    """GET /timers/<id> over pre-created ids at 64 connections for a fixed time."""
    async with b.server(target, "get") as proc:
        made = await loadgen.run_list(
            "127.0.0.1",
            proc.port,
            [creates(proc.port, FAR)] * b.sizes.get_ids,
            connections=b.sizes.connections,
            timeout_s=60,
            keep_bodies=True,
        )
        host = f"127.0.0.1:{proc.port}"
        ids = [json.loads(body)["id"] for body in made.bodies]
        if not ids:
            raise RuntimeError(f"no timer could be created: {made.summary()}")
        gets = [loadgen.encode_request("GET", f"/timers/{i}", host) for i in ids]
        res, cpu = await measured(
            proc,
            loadgen.run_for(
                "127.0.0.1",
                proc.port,
                gets,
                connections=b.sizes.connections,
                duration_s=b.sizes.get_s,
            ),
        )
    out = res.summary()
    return {**out, "server_cpu": cpu, "per_cpu_s": per_cpu(out["rate"], cpu), "ids": len(ids)}


async def batch(b: Bench, target: Target) -> dict[str, Any]:
    """POST /timers/batch, `batch_items` per request at 4 connections, or the SQLite ceiling."""
    items = b.sizes.batch_items
    if target.name == "sqlite":
        return await sqlite_ceiling(b, items)
    async with b.server(target, "batch") as proc:
        body = {"timers": [FAR] * items}
        request = loadgen.post_json("/timers/batch", f"127.0.0.1:{proc.port}", body)
        res, cpu = await measured(
            proc,
            loadgen.run_for(
                "127.0.0.1",
                proc.port,
                [request],
                connections=b.sizes.batch_connections,
                duration_s=b.sizes.batch_s,
            ),
        )
    out = res.summary()
    rate = round(out["rate"] * items, 1)
    return {**out, "rate": rate, "requests_per_s": out["rate"], "items": items,
            "server_cpu": cpu, "per_cpu_s": per_cpu(rate, cpu)}  # fmt: skip


async def sqlite_ceiling(b: Bench, items: int) -> dict[str, Any]:
    """Plain sqlite3 inserts of the same rows, `items` per transaction, on the server core."""
    folder = b.fresh_dir("sqlite")
    argv = [sys.executable, str(BENCH / "bulk.py"), "sqlite-ceiling",
            "--db", str(folder / "bench.db"),
            "--seconds", str(b.sizes.batch_s), "--batch", str(items)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *procs.pinned(argv, procs.SERVER_CPU), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), b.sizes.batch_s + 60)
    if proc.returncode != 0:
        raise RuntimeError("bulk.py sqlite-ceiling failed")
    result: dict[str, Any] = json.loads(out)
    cpu = result["server_cpu"]
    return {
        **result,
        "items": items,
        "ok": result["rows"],
        "per_cpu_s": per_cpu(result["rate"], cpu),
    }


async def deliveries(
    receiver: procs.Proc,
    expected: int,
    due_by: float,
    stall_s: float,
    server: procs.Proc | None = None,
) -> dict[str, Any]:
    """Wait (bounded) for `expected` distinct webhooks; return the receiver's summary.

    Stops when all arrived, or when nothing new arrived for `stall_s` after `due_by` (the
    last due instant; 6 x as long before the first), or when the server's `/_stats` says
    the rest were dropped.
    """
    last_count, last_change = -1, time.time()
    hard_stop = max(due_by, time.time()) + 30 * stall_s
    summary: dict[str, Any] = {}
    dropped = 0
    for _ in range(100_000):
        summary = await procs.get_json(receiver.port, "/_summary")
        now = time.time()
        if summary["unique"] != last_count:
            last_count, last_change = summary["unique"], now
        if server is not None and "missed" in server.extra.get("stats", ()):
            # a peer busy firing may answer slowly: skip this look, try the next
            with contextlib.suppress(OSError, TimeoutError):
                stats = await procs.get_json(server.port, "/_stats")
                dropped = stats["missed"] + stats["errors"]
        if summary["unique"] + dropped >= expected:
            break
        # a slow scheduler may need a while before its first delivery: allow it 6x as long
        patience = stall_s if summary["unique"] else 6 * stall_s
        if (now > due_by and now - max(last_change, due_by) > patience) or now > hard_stop:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a duplicate would come right behind
    summary = await procs.get_json(receiver.port, "/_summary")
    summary["missing"] = expected - summary["unique"]
    if server is not None and "stats" in server.extra:
        summary["dropped_reported"] = dropped
    return summary


async def _lead(b: Bench, proc: procs.Proc, count: int) -> float:
    """Seconds to allow for creating `count` timers before the first is due."""
    rate = await warm_rate(b, proc)
    return min(300.0, max(2.0, count / (0.5 * rate) + 2.0))


def _note_stats(target: Target, proc: procs.Proc) -> None:
    if target.name.startswith("apscheduler"):
        proc.extra["stats"] = ("missed",)


async def burst(b: Bench, target: Target) -> dict[str, Any]:
    """`burst` timers all due at one instant T, created before T: time from T to the last."""
    n = b.sizes.burst
    async with b.receiver() as recv, b.server(target, "burst") as proc:
        _note_stats(target, proc)
        due = time.time() + await _lead(b, proc, n)
        body = {"fire_at": due, "url": hook(recv)}
        made = await loadgen.run_list(
            "127.0.0.1",
            proc.port,
            [creates(proc.port, body)] * n,
            connections=b.sizes.connections,
            timeout_s=due - time.time() + 60,
        )
        created_before = time.time() < due
        got = await deliveries(recv, made.ok, due, b.sizes.stall_s, proc)
    return {
        "created": made.ok,
        "create_errors": made.errors,
        "created_before_T": created_before,
        "last_after_T_s": round(got["last_arrival"] - due, 3) if got["unique"] else None,
        **_delivery_figures(got),
    }


def _delivery_figures(got: dict[str, Any]) -> dict[str, Any]:
    keys = ("unique", "missing", "duplicates", "retried", "late_p50_ms", "late_p99_ms",
            "late_max_ms", "dropped_reported")  # fmt: skip
    return {("delivered" if k == "unique" else k): got[k] for k in keys if k in got}


async def steady(b: Bench, target: Target) -> dict[str, Any]:
    """Preloaded timers due uniformly at `steady_rate`/s; lateness, and create p99 meanwhile."""
    s = b.sizes
    n = int(s.steady_rate * s.steady_s)
    async with b.receiver() as recv, b.server(target, "steady") as proc:
        _note_stats(target, proc)
        start = time.time() + await _lead(b, proc, n)
        url = hook(recv)
        made = await loadgen.run_list(
            "127.0.0.1",
            proc.port,
            [creates(proc.port, {"fire_at": start + i / s.steady_rate, "url": url})
             for i in range(n)],
            connections=s.connections,
            timeout_s=start - time.time() + 60,
        )  # fmt: skip
        created_before = time.time() < start
        await asyncio.sleep(max(0.0, start - time.time()))
        probe = await loadgen.run_rate(
            "127.0.0.1",
            proc.port,
            lambda _: creates(proc.port, FAR),
            rate=s.probe_rate,
            duration_s=s.steady_s,
        )
        got = await deliveries(recv, made.ok, start + s.steady_s, s.stall_s, proc)
    p = probe.summary()
    return {
        "created": made.ok,
        "created_before_start": created_before,
        **_delivery_figures(got),
        "create_p50_ms": p["p50_ms"],
        "create_p99_ms": p["p99_ms"],
        "create_errors": p["errors"],
    }


async def live(b: Bench, target: Target) -> dict[str, Any]:
    """Creates at `live_rate`/s, each due `live_delay_s` later, while earlier ones fire."""
    s = b.sizes
    async with b.receiver() as recv, b.server(target, "live") as proc:
        _note_stats(target, proc)
        await warm_rate(b, proc)
        body = creates(proc.port, {"seconds": s.live_delay_s, "url": hook(recv)})
        res = await loadgen.run_rate(
            "127.0.0.1", proc.port, lambda _: body, rate=s.live_rate, duration_s=s.live_s
        )
        got = await deliveries(recv, res.ok, time.time() + s.live_delay_s, s.stall_s, proc)
    p = res.summary()
    return {
        "created": res.ok,
        "create_rate": p["rate"],
        "create_p50_ms": p["p50_ms"],
        "create_p99_ms": p["p99_ms"],
        "create_errors": p["errors"],
        "loadgen_cpu": p["loadgen_cpu"],
        **_delivery_figures(got),
    }
