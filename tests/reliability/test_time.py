"""Campaign 5: the wall clock jumps. Forward (a laptop waking): due timers fire at once.
Backward: nothing fires early. Runs the real service on a fake clock."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Receiver
from tests.fakes import FakeClock, settle
from tests.reliability.campaign import report
from tests.test_service import Harness, limits
from timerd.validation import CreateSpec


async def test_jumps_back_and_forth(tmp_path: Path, receiver: Receiver) -> None:
    clock = FakeClock()
    h = Harness(tmp_path, clock, limits(window_s=60))
    await h.start()
    try:
        t0 = clock.now()
        svc = h.service
        await svc.start()
        soon, later = await svc.create(
            [
                CreateSpec(url=receiver.url, fire_at=t0 + 30),
                CreateSpec(url=receiver.url, fire_at=t0 + 7200),
            ]
        )
        await settle(lambda: clock.sleepers >= 1)
        clock.set(t0 - 3600)  # NTP steps the clock back an hour
        await settle(lambda: clock.sleepers >= 1)
        clock.set(t0 + 29.9)  # still before `soon`, though far past the backward step
        await settle(lambda: clock.sleepers >= 1)
        assert receiver.hits == []
        clock.set(t0 + 30)
        await receiver.wait_for(1)
        clock.set(t0 + 5 * 3600)  # the lid opens five hours later
        await receiver.wait_for(2)
        assert receiver.ids() == [soon.id, later.id]
        for hit in receiver.hits:
            assert float(hit.headers["Timerd-Fire-At"]) <= clock.now()
        report("clock_jumps", backward_s=3600, forward_s=5 * 3600 - 30, early=0, missed=0)
    finally:
        await h.stop()
