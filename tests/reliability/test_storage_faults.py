"""Campaign 3: a full, read-only, locked or missing disk. Never a 201 for an uncommitted timer,
acknowledged timers survive, and the daemon recovers by itself when the fault clears."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.procs import QUIET, TIMERD, Daemon, DaemonStartError
from tests.reliability.campaign import report

pytestmark = pytest.mark.e2e
FAR = {"hours": 1000, "url": "http://127.0.0.1:9/hook"}


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` at `path` (Linux, root), or skip the test."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root on Linux")
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


async def create_batch(session: aiohttp.ClientSession, url: str, n: int) -> tuple[int, Any]:
    async with session.post(url + "/timers/batch", json={"timers": [FAR] * n}) as resp:
        return resp.status, await resp.json(content_type=None)


async def count_pending(session: aiohttp.ClientSession, url: str, ids: set[str]) -> int:
    found = 0
    cursor = None
    while True:
        params = {"status": "pending", "limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with session.get(url + "/timers", params=params) as resp:
            page = await resp.json()
        found += sum(1 for t in page["timers"] if t["id"] in ids)
        cursor = page["next_cursor"]
        if not cursor:
            return found


async def test_full_then_read_only_disk(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", "3m") as mnt:
        daemon = Daemon(mnt / "t.db", env=QUIET, home=tmp_path)
        await daemon.start()
        acked: set[str] = set()
        rejected = 0
        problem: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession() as session:
                filler = mnt / "filler"
                free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
                filler.write_bytes(b"\0" * max(0, free - 400_000))
                for _ in range(200):
                    async with session.post(
                        daemon.url + "/timers/batch", json={"timers": [FAR] * 200}
                    ) as resp:
                        body = await resp.json(content_type=None)
                        if resp.status == 201:
                            acked.update(body["ids"])
                            continue
                        assert resp.status == 503, body
                        assert resp.headers["Content-Type"].startswith("application/problem+json")
                        assert "Retry-After" in resp.headers
                        problem = body
                        rejected += 1
                        break
                assert rejected, "the disk never filled"
                async with session.get(daemon.url + "/healthz") as resp:
                    assert resp.status == 200
                filler.unlink()  # the fault clears
                deadline = time.monotonic() + 20
                while True:
                    async with session.post(daemon.url + "/timers", json=FAR) as resp:
                        if resp.status == 201:
                            acked.add((await resp.json())["id"])
                            break
                    assert time.monotonic() < deadline, "no recovery after the disk freed up"
                    await asyncio.sleep(0.2)
            assert await daemon.stop() == 0
            await daemon.start()
            async with aiohttp.ClientSession() as session:
                survived = await count_pending(session, daemon.url, acked)
            assert await daemon.stop() == 0
            before = (mnt / "t.db").read_bytes()
            remount(mnt, "ro")
            try:
                with pytest.raises(DaemonStartError) as info:
                    await daemon.start()
                assert info.value.returncode == 1, info.value
                read_only_error = info.value.stderr.strip().splitlines()[-1]
            finally:
                remount(mnt, "rw")
            assert (mnt / "t.db").read_bytes() == before
        finally:
            await daemon.stop()
    report(
        "storage_full_and_read_only",
        acknowledged=len(acked),
        survived=survived,
        full_disk_503=rejected,
        read_only_start=read_only_error[:100],
        detail=problem.get("detail", "")[:80],
    )
    assert "timerd: error:" in read_only_error
    assert survived == len(acked)


async def test_foreign_write_lock_gives_fast_503s_and_recovers(tmp_path: Path) -> None:
    """Another process holds the write lock: the bounded queue sheds load at once."""
    daemon = Daemon(tmp_path / "t.db", "--write-queue-max", "10", env=QUIET)
    await daemon.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(daemon.url + "/timers", json=FAR) as resp:
                assert resp.status == 201
                first = (await resp.json())["id"]
            holder = sqlite3.connect(tmp_path / "t.db", isolation_level=None, timeout=0.1)
            holder.execute("BEGIN IMMEDIATE")

            async def one() -> tuple[int, float, str | None]:
                started = time.monotonic()
                async with session.post(daemon.url + "/timers", json=FAR) as resp:
                    await resp.read()
                    return resp.status, time.monotonic() - started, resp.headers.get("Retry-After")

            results = await asyncio.gather(*(one() for _ in range(60)))
            async with session.get(daemon.url + f"/timers/{first}") as resp:
                reads_during_lock = resp.status
            holder.execute("COMMIT")
            holder.close()
            fast_rejections = [r for r in results if r[0] == 503 and r[1] < 1.0]
            assert all(r[0] in (201, 503) for r in results)
            assert len(fast_rejections) >= 40
            assert all(r[2] is not None for r in results if r[0] == 503)
            deadline = time.monotonic() + 15
            while True:
                async with session.post(daemon.url + "/timers", json=FAR) as resp:
                    if resp.status == 201:
                        break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
    finally:
        code = await daemon.stop()
    report(
        "storage_foreign_lock",
        requests=60,
        fast_503=len(fast_rejections),
        reads_during_lock=reads_during_lock,
    )
    assert reads_during_lock == 200
    assert code == 0


def test_unusable_paths_fail_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for db in (blocker / "sub" / "t.db", Path("/proc/timerd-nope/t.db")):
        done = subprocess.run(
            [TIMERD, "serve", "--port", "0", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 1
        assert done.stderr.startswith("timerd: error: ")
        assert "Traceback" not in done.stderr
