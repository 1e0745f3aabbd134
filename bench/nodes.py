"""Several timerd nodes on one database, and load spread over their ports round robin.

Every node is pinned to the server core, like the single daemon it is compared with, and
like the PostgreSQL server (pgcluster.py): the server side has one core, the load
generator and the receiver the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import loadgen
import procs
from targets import PgTarget


@contextlib.asynccontextmanager
async def started(target: PgTarget, url: str, folder: Path) -> AsyncIterator[list[procs.Proc]]:
    """Start `target.nodes` nodes at once on the database `url`; stop them all after."""
    starts = await asyncio.gather(
        *(
            procs.start(
                f"{target.name}-node-{i}",
                [*target.command(url), "--node-id", f"node-{i}"],
                folder,
                cpu=procs.SERVER_CPU,
                env=target.env,
                ready_timeout_s=60.0,
            )
            for i in range(1, target.nodes + 1)
        ),
        return_exceptions=True,
    )
    nodes = [n for n in starts if isinstance(n, procs.Proc)]
    try:
        for failed in starts:
            if isinstance(failed, BaseException):
                raise failed
        yield nodes
    finally:
        for node in nodes:
            node.extra["exit_code"] = node.stop()


def cpu_s(nodes: Sequence[procs.Proc]) -> list[float]:
    """CPU seconds each node has used so far."""
    return [node.cpu_s() for node in nodes]


def merged(results: Sequence[loadgen.Result]) -> loadgen.Result:
    """One result for load sent to several ports at once (same wall clock, same client)."""
    out = loadgen.Result()
    for res in results:
        out.ok += res.ok
        out.errors += res.errors
        for status, count in res.statuses.items():
            out.statuses[status] = out.statuses.get(status, 0) + count
        out.latencies_s += res.latencies_s
        out.bodies += res.bodies
    # the runs overlap in time and share one process: its CPU time is counted by each
    out.wall_s = max((r.wall_s for r in results), default=0.0)
    out.cpu_s = max((r.cpu_s for r in results), default=0.0)
    return out


def _share(connections: int, ports: Sequence[int]) -> int:
    return max(1, connections // len(ports))


async def run_for(
    ports: Sequence[int], body: dict[str, object], *, connections: int, duration_s: float
) -> loadgen.Result:
    """Closed loop on every port at once, `connections` split among them."""
    return merged(
        await asyncio.gather(
            *(
                loadgen.run_for(
                    "127.0.0.1",
                    port,
                    [loadgen.post_json("/timers", f"127.0.0.1:{port}", body)],
                    connections=_share(connections, ports),
                    duration_s=duration_s,
                )
                for port in ports
            )
        )
    )


async def run_list(
    ports: Sequence[int],
    bodies: Sequence[dict[str, object]],
    *,
    connections: int,
    timeout_s: float,
) -> loadgen.Result:
    """Create each of `bodies` once, timer i on port i mod len(ports)."""
    k = len(ports)
    return merged(
        await asyncio.gather(
            *(
                loadgen.run_list(
                    "127.0.0.1",
                    port,
                    [loadgen.post_json("/timers", f"127.0.0.1:{port}", b) for b in bodies[j::k]],
                    connections=_share(connections, ports),
                    timeout_s=timeout_s,
                )
                for j, port in enumerate(ports)
            )
        )
    )


async def run_rate(
    ports: Sequence[int], body: dict[str, object], *, rate: float, duration_s: float
) -> loadgen.Result:
    """Open loop at `rate` in all, an equal share on each port."""
    return merged(
        await asyncio.gather(
            *(
                loadgen.run_rate(
                    "127.0.0.1",
                    port,
                    _same(loadgen.post_json("/timers", f"127.0.0.1:{port}", body)),
                    rate=rate / len(ports),
                    duration_s=duration_s,
                    connections=_share(32, ports),
                )
                for port in ports
            )
        )
    )


def _same(request: bytes) -> Callable[[int], bytes]:
    return lambda _: request
