"""The outcome log: batches in order, settles each batch, and reports what it never committed."""

from __future__ import annotations

import asyncio

from timerd.firing.outcome_log import OutcomeEntry, OutcomeLog
from timerd.models import Attempt, Outcome, Timer


def entry(n: int) -> tuple[Timer, Attempt]:
    tid = f"t{n}"
    return (
        Timer(id=tid, url="http://x/", fire_at=1.0, created_at=1.0),
        Attempt(tid, 1, 1.0, 1.0, 200, None, Outcome.DELIVERED),
    )


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.settled: list[tuple[list[str], bool]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def record(self, batch: list[OutcomeEntry]) -> None:
        self.batches.append([t.id for t, _ in batch])
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("disk on fire")

    def settle(self, batch: list[OutcomeEntry], recorded: bool) -> None:
        self.settled.append(([t.id for t, _ in batch], recorded))


async def test_outcomes_queued_during_a_commit_form_the_next_batch() -> None:
    rec = Recorder()
    log = OutcomeLog(rec.record, rec.settle, batch_max=3)
    log.start()
    try:
        rec.gate.clear()
        log.add(*entry(0))
        await asyncio.sleep(0)  # the first batch is being committed
        for n in range(1, 6):
            log.add(*entry(n))
        assert len(log) == 6
        rec.gate.set()
        assert await log.flush(5.0)
        assert rec.batches == [["t0"], ["t1", "t2", "t3"], ["t4", "t5"]]
        assert [recorded for _, recorded in rec.settled] == [True, True, True]
        assert len(log) == 0
    finally:
        await log.stop()


async def test_a_failed_batch_is_settled_as_not_recorded_and_the_log_goes_on() -> None:
    rec = Recorder()
    rec.fail = True
    log = OutcomeLog(rec.record, rec.settle)
    log.start()
    try:
        log.add(*entry(0))
        assert await log.flush(5.0)
        rec.fail = False
        log.add(*entry(1))
        assert await log.flush(5.0)
        assert rec.settled == [(["t0"], False), (["t1"], True)]
    finally:
        await log.stop()


async def test_stop_returns_what_was_never_committed() -> None:
    rec = Recorder()
    log = OutcomeLog(rec.record, rec.settle, batch_max=2)
    log.start()
    rec.gate.clear()
    for n in range(3):
        log.add(*entry(n))
    await asyncio.sleep(0)
    assert not await log.flush(0.05)  # stuck behind the gate
    lost = await log.stop()
    assert sorted(t.id for t, _ in lost) == ["t0", "t1", "t2"]
    assert rec.settled == []
