"""Bulk work done without HTTP, each as a subcommand run in its own (pinned) process.

- `load`: put N pending timers into a timerd database through timerd's own `SqliteStore`
  (the `scale` and `catchup` scenarios: creating 10M timers over HTTP would take hours, and
  what they measure is boot and delivery, not creation).
- `sqlite-ceiling`: insert timer rows into timerd's schema with plain `sqlite3`, 1,000 rows
  per transaction, same synchronous mode: the disk's limit that `batch` is judged against.

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from pathlib import Path

from timerd.models import Timer, new_id
from timerd.store.sqlite import SqliteStore, prepare_file

CHUNK = 50_000

_INSERT = (
    "INSERT INTO timers (id, url, fire_at, created_at, status, next_at, attempts, updated_at, "
    "fired_at, last_status_code, last_error) VALUES (?, ?, ?, ?, 'pending', ?, 0, ?, NULL, NULL, "
    "NULL)"
)


async def load(db: Path, count: int, url: str, first: float, last: float) -> dict[str, float]:
    """Insert `count` pending timers due evenly from `first` to `last`, in chunks."""
    started = time.perf_counter()
    store = SqliteStore(db, synchronous="off")
    await store.open()
    now = time.time()
    step = (last - first) / max(1, count - 1)
    try:
        for base in range(0, count, CHUNK):
            chunk = [
                Timer(
                    id=new_id(),
                    url=url,
                    fire_at=(at := first + i * step),
                    created_at=now,
                    next_at=at,
                    updated_at=now,
                )
                for i in range(base, min(count, base + CHUNK))
            ]
            await store.insert_timers(chunk)
    finally:
        await store.close()
    return {"loaded": count, "load_s": round(time.perf_counter() - started, 3)}


def sqlite_ceiling(
    db: Path, seconds: float, batch: int, synchronous: str, url: str
) -> dict[str, float]:
    """Insert `batch`-row transactions for `seconds` (bounded) and report rows/s."""
    prepare_file(db, synchronous)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    rows = 0
    cpu0, started = time.process_time(), time.perf_counter()
    deadline = started + seconds
    for _ in range(1_000_000):  # bounded; the deadline ends it long before
        if time.perf_counter() >= deadline:
            break
        now = time.time()
        fire = now + 86_400 * 365
        data = [(new_id(), url, fire, now, fire, now) for _ in range(batch)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, data)
        conn.execute("COMMIT")
        rows += batch
    wall = time.perf_counter() - started
    conn.close()
    cpu = round((time.process_time() - cpu0) / wall, 3)
    return {
        "rows": rows,
        "wall_s": round(wall, 3),
        "rate": round(rows / wall, 1),
        "server_cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_load = sub.add_parser("load")
    p_load.add_argument("--db", type=Path, required=True)
    p_load.add_argument("--count", type=int, required=True)
    p_load.add_argument("--url", required=True)
    p_load.add_argument("--first", type=float, required=True, help="epoch s of the first due")
    p_load.add_argument("--last", type=float, required=True, help="epoch s of the last due")
    p_ceil = sub.add_parser("sqlite-ceiling")
    p_ceil.add_argument("--db", type=Path, required=True)
    p_ceil.add_argument("--seconds", type=float, default=10.0)
    p_ceil.add_argument("--batch", type=int, default=1000)
    p_ceil.add_argument("--synchronous", default="full")
    p_ceil.add_argument("--url", default="http://127.0.0.1:9/hook")
    args = parser.parse_args()
    if args.command == "load":
        result = asyncio.run(load(args.db, args.count, args.url, args.first, args.last))
    else:
        result = sqlite_ceiling(args.db, args.seconds, args.batch, args.synchronous, args.url)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
