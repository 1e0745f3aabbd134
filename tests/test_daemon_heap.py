"""The daemon settles its heap before it serves: boot's garbage collected, the rest frozen."""

from __future__ import annotations

import gc
import weakref

from timerd.daemon.app import settle_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_heap_collects_boot_garbage_then_freezes_the_live_heap() -> None:
    gc.unfreeze()
    alive = [[index] for index in range(1000)]
    cycle = _Node()
    cycle.other = _Node()
    cycle.other.other = cycle
    gone = weakref.ref(cycle)
    del cycle
    try:
        settle_heap()
        assert gone() is None  # the cycle was collected, not frozen for good
        assert gc.get_freeze_count() >= len(alive)
        tracked = {id(obj) for obj in gc.get_objects()}
        assert not tracked & {id(item) for item in alive}  # no full collection walks them
    finally:
        gc.unfreeze()
