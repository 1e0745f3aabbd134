"""Campaign 1: kill -9 at random moments under a steady create load; nothing acknowledged is lost.

The client keeps its own log of every 201. After the last kill everything comes due, and
the receiver must have seen every logged id. A duplicate is allowed only for a delivery in
flight at a kill, so each duplicate's first arrival must sit just before one of the kills.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Receiver
from tests.procs import QUIET, Daemon
from tests.reliability.campaign import SEED, report, size

pytestmark = pytest.mark.e2e


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


async def test_crash_loop_loses_nothing(tmp_path: Path, receiver: Receiver) -> None:
    rng = random.Random(SEED)
    kills = size(20, 60)
    db = tmp_path / "crash.db"
    flags = ("--backoff-base-s", "0.05", "--backoff-max-s", "0.2", "--grace-s", "1")
    async with Daemon(db, *flags, env=QUIET) as daemon:
        acked: dict[str, float] = {}
        kill_times: list[float] = []
        stop_load = asyncio.Event()

        async def load(session: aiohttp.ClientSession, worker: int) -> None:
            while not stop_load.is_set():
                body = {"seconds": round(rng.uniform(0, 3), 3), "url": receiver.url}
                try:
                    async with session.post(daemon.url + "/timers", json=body) as resp:
                        if resp.status == 201:
                            acked[(await resp.json())["id"]] = time.time()
                        else:
                            await resp.read()
                except (aiohttp.ClientError, OSError, TimeoutError):
                    await asyncio.sleep(0.02)  # the daemon is down or restarting

        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            workers = [asyncio.create_task(load(session, i)) for i in range(8)]
            for _ in range(kills):
                await asyncio.sleep(rng.uniform(0.15, 0.6))
                kill_times.append(time.time())
                await daemon.kill9()
                assert integrity(db) == "ok"
                await daemon.start()
            stop_load.set()
            await asyncio.gather(*workers)

        # everything acknowledged comes due within ~3 s; retries and catch-up take a little more
        deadline = time.monotonic() + 60
        while set(acked) - set(receiver.ids()) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await receiver.wait_for(
                    len(receiver.hits) + 1, timeout_s=deadline - time.monotonic()
                )
        code = await daemon.stop()
    received = receiver.ids()
    missing = set(acked) - set(received)
    counts: dict[str, int] = {}
    first_arrival: dict[str, float] = {}
    for hit, tid in zip(receiver.hits, received, strict=True):
        counts[tid] = counts.get(tid, 0) + 1
        first_arrival.setdefault(tid, hit.arrived_at)
    duplicates = [tid for tid, n in counts.items() if n > 1]
    unexplained = [
        tid
        for tid in duplicates
        if not any(-0.05 <= k - first_arrival[tid] <= 1.0 for k in kill_times)
    ]
    report(
        "crash_loop",
        kills=kills,
        acknowledged=len(acked),
        delivered_ids=len(counts),
        lost=len(missing),
        duplicates=len(duplicates),
        unexplained_duplicates=len(unexplained),
        integrity_checks=kills,
    )
    assert code == 0
    assert len(acked) > kills * 10  # the load was real
    assert not missing, f"{len(missing)} acknowledged timers never fired"
    assert not unexplained, f"duplicates not in flight at any kill: {unexplained[:5]}"


async def test_crash_loop_on_postgresql_kills_one_of_three_nodes_each_round(
    pg_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """The PostgreSQL form: three nodes under the load, one killed and restarted each round."""
    rng = random.Random(SEED)
    rounds = size(6, 20)
    lease = ("--node-lease-s", "2", "--attempt-timeout-s", "2")
    flags = ("--backoff-base-s", "0.05", "--backoff-max-s", "0.2", "--grace-s", "1", *lease)
    nodes = [
        Daemon(pg_url, *flags, "--node-id", f"node-{n}", env=QUIET, home=tmp_path) for n in "abc"
    ]
    await asyncio.gather(*(n.start() for n in nodes))
    acked: dict[str, float] = {}
    kills: list[tuple[float, str]] = []
    stop_load = asyncio.Event()

    async def load(session: aiohttp.ClientSession, worker: int) -> None:
        turn = worker
        while not stop_load.is_set():
            turn += 1
            node = nodes[turn % len(nodes)]
            body = {"seconds": round(rng.uniform(0, 3), 3), "url": receiver.url}
            try:
                async with session.post(node.url + "/timers", json=body) as resp:
                    if resp.status == 201:
                        acked[(await resp.json())["id"]] = time.time()
                    else:
                        await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.sleep(0.02)  # that node is down or restarting: the next one

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            workers = [asyncio.create_task(load(session, i)) for i in range(6)]
            for round_no in range(rounds):
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                victim = nodes[round_no % len(nodes)]
                kills.append((time.time(), victim.argv[-1]))
                await victim.kill9()
                await victim.start()
            stop_load.set()
            await asyncio.gather(*workers)

        # all due within ~3 s; a dead node's claims wait out their lease (2 + 2 s)
        deadline = time.monotonic() + 90
        while set(acked) - set(receiver.ids()) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await receiver.wait_for(
                    len(receiver.hits) + 1, timeout_s=deadline - time.monotonic()
                )
    finally:
        codes = [await n.stop() for n in nodes if n.running]
    received = receiver.ids()
    missing = set(acked) - set(received)
    first: dict[str, tuple[float, str]] = {}
    counts: collections.Counter[str] = collections.Counter(received)
    for hit, tid in zip(receiver.hits, received, strict=True):
        first.setdefault(tid, (hit.arrived_at, hit.headers["Timerd-Node"]))
    duplicates = [tid for tid, n in counts.items() if n > 1]
    # a duplicate is an attempt in flight on the killed node: it sent it just before the kill
    unexplained = [
        tid
        for tid in duplicates
        if not any(
            node == first[tid][1] and -0.05 <= at - first[tid][0] <= 1.0 for at, node in kills
        )
    ]
    report(
        "crash_loop_postgresql",
        nodes=3,
        kills=rounds,
        acknowledged=len(acked),
        delivered_ids=len(counts),
        lost=len(missing),
        duplicates=len(duplicates),
        unexplained_duplicates=len(unexplained),
    )
    assert codes == [0, 0, 0]
    assert len(acked) > rounds * 10  # the load was real
    assert not missing, f"{len(missing)} acknowledged timers never fired"
    assert not unexplained, f"duplicates not in flight at any kill: {unexplained[:5]}"
