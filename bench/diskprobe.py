"""How long this machine's disk takes to make a small write durable (write + fdatasync).

    .venv/bin/python bench/diskprobe.py --seconds 30          # one JSON line

With `synchronous=full` every group commit ends in such a flush, and every create in that
commit waits for it: the flush's tail is a floor under any create p99, whatever timerd does.
The probe writes 8 KiB and flushes it 300 times a second (the size and pace of a busy
writer's commits) in the folder the benchmark's databases use, and reports percentiles,
the worst flush and how many took longer than 50 ms. `run.py` runs it for a few seconds
before the scenarios and records the result with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from stats import percentile

SLOW_MS = 50.0


def fdatasync_latency(
    folder: Path, seconds: float, rate: float = 300.0, size: int = 8192
) -> dict[str, Any]:
    """Write `size` bytes and fdatasync them `rate` times a second for `seconds`."""
    block = os.urandom(size)
    span = 64 * size  # rewrite a small region, as a WAL that is reset by checkpoints does
    taken: list[float] = []
    with tempfile.NamedTemporaryFile(dir=folder, prefix="diskprobe-") as handle:
        fd = handle.fileno()
        os.pwrite(fd, bytes(span), 0)
        os.fsync(fd)
        start = time.perf_counter()
        beat = start
        offset = 0
        while time.perf_counter() - start < seconds:
            os.pwrite(fd, block, offset)
            offset = (offset + size) % span
            before = time.perf_counter()
            os.fdatasync(fd)
            taken.append((time.perf_counter() - before) * 1000)
            beat += 1 / rate
            pause = beat - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    taken.sort()
    return {
        "flushes": len(taken),
        "p50_ms": round(percentile(taken, 50), 3),
        "p99_ms": round(percentile(taken, 99), 3),
        "p999_ms": round(percentile(taken, 99.9), 3),
        "max_ms": round(taken[-1], 3),
        "over_50_ms": sum(t > SLOW_MS for t in taken),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=300.0, help="flushes per second")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    print(json.dumps({"kind": "disk", **fdatasync_latency(args.dir, args.seconds, args.rate)}))


if __name__ == "__main__":
    main()
