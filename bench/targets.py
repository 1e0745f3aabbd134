"""The servers under test: how to start each, and which scenarios each can take part in.

APScheduler and SQLAlchemy live only in the bench venv (`/work/main/.venv-bench`, made by
`make -C bench venv`), never in the project's; without it those targets are skipped, with
the reason printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"

FIRING = frozenset({"burst", "steady", "live"})


@dataclass(frozen=True)
class Target:
    """A server the harness can start on a fresh database."""

    name: str
    argv: tuple[str, ...]
    scenarios: frozenset[str]
    env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable

    def command(self, db: Path | str) -> list[str]:
        """The full command line for a server on `db`, port chosen by the OS."""
        return [*self.argv, "--port", "0", "--db", str(db)]


@dataclass(frozen=True)
class PgTarget(Target):
    """timerd nodes sharing one fresh PostgreSQL database (bench/pgscenarios.py runs them)."""

    nodes: int = 1


def _peer(name: str, script: str, scenarios: frozenset[str], *extra: str) -> Target:
    return Target(name, (sys.executable, str(PEERS / script), *extra), scenarios)


def _timerd_exe() -> str:
    exe = Path(sys.executable).with_name("timerd")
    return str(exe) if exe.exists() else "timerd"


TIMERD_ENV = {
    # quiet logs: a log line per request would measure the terminal, not the daemon
    "TIMERD_LOG_LEVEL": "warning",
}

ALL: dict[str, Target] = {
    "ceiling": _peer("ceiling", "ceiling.py", frozenset({"create", "get"})),
    "timerd": Target(
        "timerd",
        (_timerd_exe(), "serve"),
        frozenset({"create", "get", "batch", "scale", "catchup"} | FIRING),
        env=TIMERD_ENV,
    ),
    "polling": _peer("polling", "polling.py", frozenset({"create", "get", "batch"} | FIRING)),
    "apscheduler": Target(
        "apscheduler",
        (str(BENCH_PYTHON), str(PEERS / "apscheduler_peer.py")),
        frozenset({"create", "get"} | FIRING),
    ),
    "apscheduler-nograce": Target(
        "apscheduler-nograce",
        (str(BENCH_PYTHON), str(PEERS / "apscheduler_peer.py"), "--no-grace"),
        frozenset(FIRING),
    ),
    # not a server: plain sqlite3 inserts in timerd's schema, the ceiling for `batch`
    "sqlite": Target("sqlite", (sys.executable, str(BENCH / "bulk.py")), frozenset({"batch"})),
}

# timerd as another checkout has it, beside this one in the same run: set TIMERD_BENCH_BASELINE to
# that checkout's src folder (e.g. a `git worktree add /tmp/before <commit>`)
ALL["timerd-baseline"] = Target(
    "timerd-baseline",
    (sys.executable, "-m", "timerd", "serve"),
    ALL["timerd"].scenarios,
    env={**TIMERD_ENV, "PYTHONPATH": os.environ.get("TIMERD_BENCH_BASELINE", "")},
)

# one, two and three nodes on the bench's throwaway PostgreSQL; creates go round robin
for _nodes in (1, 2, 3):
    _name = "timerd-pg" if _nodes == 1 else f"timerd-pg{_nodes}"
    ALL[_name] = PgTarget(
        _name,
        (_timerd_exe(), "serve"),
        frozenset({"create", "burst", "steady"}),
        env=TIMERD_ENV,
        nodes=_nodes,
    )

DEFAULT = ("ceiling", "timerd", "polling", "apscheduler", "apscheduler-nograce", "sqlite")


def unavailable(target: Target) -> str | None:
    """Why `target` cannot run here, or None if it can."""
    if target.name.startswith("apscheduler"):
        if not BENCH_PYTHON.exists():
            return f"{BENCH_PYTHON} is missing (make -C bench venv creates it)"
        probe = subprocess.run(
            [str(BENCH_PYTHON), "-c", "import apscheduler, sqlalchemy, timerd"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if probe.returncode != 0:
            return (
                "apscheduler/sqlalchemy not importable in .venv-bench: "
                + (probe.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            )
    if target.name == "timerd-baseline" and not os.environ.get("TIMERD_BENCH_BASELINE"):
        return "set TIMERD_BENCH_BASELINE to the src folder of the checkout to compare with"
    if target.name == "timerd" or isinstance(target, PgTarget):
        probe = subprocess.run(
            [sys.executable, "-c", "import timerd.daemon.app, timerd.cli"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if probe.returncode != 0:
            return "timerd.daemon/timerd.cli are not importable yet"
    return None
