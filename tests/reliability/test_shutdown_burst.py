"""Campaign 6: SIGTERM in the middle of a burst drains within the grace period, and the restart
delivers the rest with no duplicate."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.conftest import Receiver
from tests.procs import QUIET, Daemon
from tests.reliability.campaign import report, size
from timerd.models import Timer, new_id
from timerd.store import SqliteStore

pytestmark = pytest.mark.e2e


async def test_sigterm_during_a_burst(tmp_path: Path, receiver: Receiver) -> None:
    count = size(10_000, 50_000)
    db = tmp_path / "burst.db"
    due = time.time() + 3
    store = SqliteStore(db)
    await store.open()
    timers = [
        Timer(
            id=new_id(), url=receiver.url, fire_at=due, created_at=due, next_at=due, updated_at=due
        )
        for _ in range(count)
    ]
    await store.insert_timers(timers)
    await store.close()
    grace_s = 5.0
    async with Daemon(db, "--grace-s", str(grace_s), env=QUIET) as daemon:
        await receiver.wait_for(count // 5, timeout_s=60)  # the burst is under way
        before_stop = len(receiver.hits)
        started = time.monotonic()
        code = await daemon.stop(timeout_s=grace_s + 20)
        stop_s = time.monotonic() - started
        at_stop = len(receiver.hits)
        await daemon.start()
        with contextlib.suppress(TimeoutError):
            await receiver.wait_for(count, timeout_s=60)
        # a graceful stop waits for every delivery in flight to be answered, and the
        # receiver records a hit before it answers: after it, any duplicate is counted
        final = await daemon.stop()
    ids = receiver.ids()
    duplicates = len(ids) - len(set(ids))
    missing = {t.id for t in timers} - set(ids)
    report(
        "sigterm_burst",
        timers=count,
        delivered_before_sigterm=before_stop,
        delivered_by_exit=at_stop,
        stop_s=round(stop_s, 2),
        missing=len(missing),
        duplicates=duplicates,
    )
    assert code == 0
    assert stop_s < grace_s + 5
    assert at_stop < count, "the burst finished before the signal; the test proved nothing"
    assert not missing
    assert duplicates == 0
    assert final == 0
