"""Changes against a real daemon: a refused one strands nothing, a queued timer is not busy."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Hit, Receiver
from tests.e2e.conftest import DaemonStarter, create_batch, create_timer, get_timer, wait_status

pytestmark = pytest.mark.e2e


async def test_a_patch_refused_by_a_locked_database_does_not_strand_its_timer(
    tmp_path: Path, daemon: DaemonStarter, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    db = tmp_path / "timers.db"
    d = await daemon(db, "--window-s", "4")
    timer_id = await create_timer(http, d.url, url=receiver.url, seconds=7)
    due_at, due_mono = time.time() + 7, time.monotonic() + 7

    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # every write now waits, then fails
    try:
        async with http.patch(
            f"{d.url}/timers/{timer_id}", json={"url": receiver.url + "/moved"}
        ) as resp:
            assert resp.status == 503, await resp.text()
        # hold the lock until the refill that pages the timer in has come and gone
        await asyncio.sleep(max(0.0, due_mono - 1 - time.monotonic()))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    (hit,) = await receiver.wait_for(1, timeout_s=10)
    assert hit.path.endswith(f"/{timer_id}")
    assert not hit.path.endswith(f"/moved/{timer_id}")  # the refused PATCH changed nothing
    late_s = hit.arrived_at - due_at
    assert late_s < 5.0, f"fired {late_s:.1f} s late"  # tolerant: a loaded 2-core machine
    assert (await get_timer(http, d.url, timer_id))["status"] in {"pending", "fired"}


async def test_timers_waiting_for_a_slow_host_can_be_cancelled(
    tmp_path: Path, daemon: DaemonStarter, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """Only an attempt on the wire answers 409; timers queued behind it act at once (SPEC)."""
    release = asyncio.Event()

    async def slow(_: Hit) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    receiver.respond = slow
    d = await daemon(tmp_path / "timers.db", "--max-per-host", "1")
    ids = await create_batch(http, d.url, [{"url": receiver.url, "seconds": 0}] * 3)
    try:
        await receiver.wait_for(1)
        on_wire = receiver.ids()[0]
        for timer_id in ids:
            async with http.delete(f"{d.url}/timers/{timer_id}") as resp:
                body = await resp.json()
                if timer_id == on_wire:
                    assert resp.status == 409, body
                    assert "being delivered" in body["detail"]
                else:
                    assert resp.status == 200, body
                    assert body["status"] == "cancelled"
                    assert body["attempts"] == 0
    finally:
        release.set()
    await wait_status(http, d.url, on_wire, "fired")
    assert receiver.ids() == [on_wire]
