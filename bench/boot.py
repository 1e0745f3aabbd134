"""The scenarios that start timerd on a database that already holds timers: scale, catchup.

Timers are bulk-loaded through timerd's own store (`bulk.py load`), not over HTTP: the
point is what the daemon does with a full database at boot, and creating 10M timers over
HTTP would take most of an hour. Every report says so in its `loaded_via` field.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import loadgen
import procs
from scenarios import FAR, Bench, creates, deliveries, hook
from targets import BENCH, Target

LOADED_VIA = "bulk insert through timerd.store.sqlite.SqliteStore (not HTTP)"


async def bulk_load(db: Path, count: int, url: str, first: float, last: float) -> float:
    """Load `count` timers due from `first` to `last` into `db`; return the seconds it took."""
    argv = [sys.executable, str(BENCH / "bulk.py"), "load", "--db", str(db), "--count",
            str(count), "--url", url, "--first", repr(first), "--last", repr(last)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"bulk load of {count} timers failed")
    return float(json.loads(out)["load_s"])


async def scale(b: Bench, target: Target) -> dict[str, Any]:
    """Boot time, RSS and early lateness at each size, and each size's boot time vs the base."""
    sizes = (b.sizes.scale_base, *b.sizes.scale)
    by_size = [await _scale_one(b, target, n) for n in sizes]
    base = by_size[0]["boot_s"]
    for row in by_size:
        row["boot_vs_base"] = round(row["boot_s"] / base, 2) if base else None
    return {"loaded_via": LOADED_VIA, "sizes": by_size}


async def _scale_one(b: Bench, target: Target, count: int) -> dict[str, Any]:
    folder = b.fresh_dir(f"scale-{count}")
    db = folder / "bench.db"
    due = b.sizes.scale_due
    async with b.receiver() as recv:
        url = hook(recv)
        now = time.time()
        load_s = await bulk_load(db, count, url, now + 86_400, now + 365 * 86_400)
        # due soon after boot: leave time for this small load itself, which into a big
        # database takes seconds (its start is what `first_due_after_start_s` checks)
        first = time.time() + 5.0 + 20 * due * load_s / max(1, count)
        load_s += await bulk_load(db, due, url, first, first + 1.0)
        db_mb = sum(p.stat().st_size for p in folder.glob("bench.db*")) / 2**20
        proc = await procs.start(
            target.name, target.command(db), folder, cpu=procs.SERVER_CPU, env=target.env,
            ready_timeout_s=600,
        )  # fmt: skip
        try:
            healthy = await procs.wait_healthy(proc.port, timeout_s=600)
            got = await deliveries(recv, due, first + 1.0, b.sizes.stall_s)
            memory = proc.memory_mb()
        finally:
            proc.stop()
    return {
        "pending": count + due,
        "db_mb": round(db_mb, 1),
        "load_s": round(load_s, 1),
        "listening_s": round(proc.listening_s, 3),
        "boot_s": round(healthy - proc.started, 3) if healthy else None,
        **memory,
        "due_after_boot": due,
        "first_due_after_start_s": round(first - proc.started, 3),
        "delivered": got["unique"],
        "missing": got["missing"],
        "duplicates": got["duplicates"],
        "late_p50_ms": got["late_p50_ms"],
        "late_p99_ms": got["late_p99_ms"],
        "late_max_ms": got["late_max_ms"],
    }


async def catchup(b: Bench, target: Target) -> dict[str, Any]:
    """Timers that fell due while the daemon was down: delivery rate after boot, create p99."""
    n = b.sizes.catchup
    folder = b.fresh_dir("catchup")
    db = folder / "bench.db"
    async with b.receiver() as recv:
        now = time.time()
        load_s = await bulk_load(db, n, hook(recv), now - 600, now - 1)
        proc = await procs.start(
            target.name, target.command(db), folder, cpu=procs.SERVER_CPU, env=target.env
        )
        stop = asyncio.Event()
        try:
            probe_task = asyncio.create_task(
                loadgen.run_rate(
                    "127.0.0.1",
                    proc.port,
                    lambda _: creates(proc.port, FAR),
                    rate=b.sizes.catchup_probe_rate,
                    duration_s=max(5.0, n / 2_000),
                    stop=stop,
                )
            )
            got = await deliveries(recv, n, time.time(), b.sizes.stall_s)
            stop.set()
            probe = (await probe_task).summary()
        finally:
            stop.set()
            proc.stop()
    span = got["last_arrival"] - got["first_arrival"]
    return {
        "loaded_via": LOADED_VIA,
        "overdue": n,
        "load_s": round(load_s, 1),
        "delivered": got["unique"],
        "missing": got["missing"],
        "duplicates": got["duplicates"],
        "rate": round(got["unique"] / span, 1) if span > 0 else None,
        "start_to_last_s": round(got["last_arrival"] - proc.started, 3) if got["unique"] else None,
        "create_p50_ms": probe["p50_ms"],
        "create_p99_ms": probe["p99_ms"],
        "creates": probe["ok"],
        "create_errors": probe["errors"],
    }
