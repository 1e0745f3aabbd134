"""Campaign sizes: a short form for every CI run, a long form from `make reliability`.

`TIMERD_CAMPAIGN=long` switches every campaign to its long form; `TIMERD_CAMPAIGN_SEED`
changes the fixed seed. Each campaign prints one `campaign:` line with its figures, which
RELIABILITY.md quotes.
"""

from __future__ import annotations

import json
import os
import resource
from typing import Any

LONG = os.environ.get("TIMERD_CAMPAIGN", "short") == "long"
SEED = int(os.environ.get("TIMERD_CAMPAIGN_SEED", "20261123"))


def size(short: int, long: int) -> int:
    """Pick the short or the long figure."""
    return long if LONG else short


def report(name: str, **figures: Any) -> None:
    """Print one machine-readable line of a campaign's results."""
    print(f"campaign: {json.dumps({'campaign': name, 'long': LONG, 'seed': SEED, **figures})}")


def rss_mb(pid: int) -> float:
    """Return the peak resident set size of a process, in MiB (Linux), or -1."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


def self_peak_rss_mb() -> float:
    """Return this process's peak RSS in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if os.uname().sysname == "Linux" else peak / 1024 / 1024
