"""create, burst and steady on timerd nodes sharing PostgreSQL (issue 15), beside SQLite.

The same loads as scenarios.py, spread over the nodes' ports round robin, on a fresh
database of the bench's own cluster (pgcluster.py) each time. Besides the figures the
single daemon reports, each line carries what the multi-node design costs:
- round trips per created and per delivered timer, from pg_stat_statements: each statement
  a node runs is one (BEGIN and COMMIT are their own), except asyncpg's pool reset, four
  statements in one message (pgcluster.Statements.round_trips);
- CPU per timer of every node and of PostgreSQL, measured over the same phase, so the
  throughput of a machine with a core per node can be worked out from this 2-core one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import nodes as group
import procs
from pgcluster import PROBE_QUERY, BenchCluster, Statements
from scenarios import FAR, Bench, _delivery_figures, deliveries, hook
from targets import PgTarget, Target

RECORDED_TIMEOUT_S = 60.0
"""How long to wait for the nodes to write every outcome after the last delivery."""


@contextlib.asynccontextmanager
async def _nodes(
    b: Bench, target: PgTarget, label: str
) -> AsyncIterator[tuple[list[procs.Proc], str, BenchCluster]]:
    pg = b.pg
    if pg is None:
        raise RuntimeError("no PostgreSQL cluster was started for this run")
    folder = b.fresh_dir(f"{label}-{target.name}")
    async with pg.database(label) as url, group.started(target, url, folder) as started:
        yield started, url, pg


class Meter:
    """CPU of each node and of PostgreSQL, and the database's statements, since `mark`."""

    def __init__(self, pg: BenchCluster, url: str, nodes: list[procs.Proc]) -> None:
        self.pg, self.url, self.nodes = pg, url, nodes
        self.node_cpu: list[float] = []
        self.pg_cpu = 0.0
        self.statements = Statements(0, 0, {})
        self.at = 0.0

    async def mark(self) -> None:
        self.node_cpu, self.pg_cpu = group.cpu_s(self.nodes), self.pg.cpu_s()
        self.statements = await self.pg.statements(self.url)
        self.at = time.perf_counter()

    async def since(self, count: int, what: str) -> dict[str, Any]:
        """Per-`what` costs of the `count` timers handled since the last `mark`."""
        node_cpu, pg_cpu = group.cpu_s(self.nodes), self.pg.cpu_s()
        statements = (await self.pg.statements(self.url)).since(self.statements)
        wall = time.perf_counter() - self.at
        used = [after - before for after, before in zip(node_cpu, self.node_cpu, strict=True)]
        per = max(1, count)
        return {
            f"round_trips_per_{what}": round(statements.round_trips / per, 3),
            f"statements_per_{what}": round(statements.calls / per, 3),
            f"node_cpu_ms_per_{what}": round(1e3 * sum(used) / per, 4),
            f"pg_cpu_ms_per_{what}": round(1e3 * (pg_cpu - self.pg_cpu) / per, 4),
            f"{what}_node_cpu": [round(u / wall, 3) for u in used],
            f"{what}_pg_cpu": round((pg_cpu - self.pg_cpu) / wall, 3),
            f"{what}_top_statements": statements.top(),
        }


async def _recorded(pg: BenchCluster, url: str, count: int) -> bool:
    """Wait (bounded) until the database shows `count` timers fired: outcomes written."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + RECORDED_TIMEOUT_S
        while time.monotonic() < deadline:
            done = await conn.fetchval(PROBE_QUERY)
            if int(done or 0) >= count:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await conn.close()


async def _warm_rate(b: Bench, ports: list[int]) -> float:
    res = await group.run_for(
        ports, FAR, connections=b.sizes.connections, duration_s=b.sizes.warmup_s
    )
    return max(50.0, res.rate)


def _lead_s(count: int, rate: float) -> float:
    """Seconds to allow for creating `count` timers before the first is due (as scenarios)."""
    return min(300.0, max(2.0, count / (0.5 * rate) + 2.0))


async def create(b: Bench, target: Target) -> dict[str, Any]:
    """POST /timers at 64 connections spread over the nodes, timers far in the future."""
    assert isinstance(target, PgTarget)
    async with _nodes(b, target, "create") as (started, url, pg):
        ports = [n.port for n in started]
        await _warm_rate(b, ports)
        meter = Meter(pg, url, started)
        await meter.mark()
        res = await group.run_for(
            ports, FAR, connections=b.sizes.connections, duration_s=b.sizes.create_s
        )
        costs = await meter.since(res.ok, "create")
    out = res.summary()
    cpu = sum(costs["create_node_cpu"]) + costs["create_pg_cpu"]
    return {
        **out,
        "nodes": target.nodes,
        "rate_per_node": round(out["rate"] / target.nodes, 1),
        "server_cpu": round(cpu, 3),
        "per_cpu_s": round(out["rate"] / cpu, 1) if cpu > 0.05 else None,
        **costs,
    }


async def burst(b: Bench, target: Target) -> dict[str, Any]:
    """`burst` timers all due at one instant T, created before T: time from T to the last."""
    assert isinstance(target, PgTarget)
    n = b.sizes.burst
    async with b.receiver() as recv, _nodes(b, target, "burst") as (started, url, pg):
        ports = [p.port for p in started]
        due = time.time() + _lead_s(n, await _warm_rate(b, ports))
        meter = Meter(pg, url, started)
        await meter.mark()
        body = {"fire_at": due, "url": hook(recv)}
        made = await group.run_list(
            ports, [body] * n, connections=b.sizes.connections, timeout_s=due - time.time() + 60
        )
        created_before = time.time() < due
        create_costs = await meter.since(made.ok, "create")
        await meter.mark()
        got = await deliveries(recv, made.ok, due, b.sizes.stall_s)
        recorded = await _recorded(pg, url, got["unique"])
        costs = await meter.since(got["unique"], "delivered")
    last = round(got["last_arrival"] - due, 3) if got["unique"] else None
    return {
        "nodes": target.nodes,
        "created": made.ok,
        "create_errors": made.errors,
        "created_before_T": created_before,
        "last_after_T_s": last,
        "delivery_rate": round(got["unique"] / last, 1) if last else None,
        "by_node": got["by_node"],
        "outcomes_recorded": recorded,
        **_delivery_figures(got),
        **costs,
        "round_trips_per_create": create_costs["round_trips_per_create"],
    }


async def steady(b: Bench, target: Target) -> dict[str, Any]:
    """Preloaded timers due uniformly at `steady_rate`/s over the nodes; lateness, create p99."""
    assert isinstance(target, PgTarget)
    s = b.sizes
    n = int(s.steady_rate * s.steady_s)
    async with b.receiver() as recv, _nodes(b, target, "steady") as (started, url, pg):
        ports = [p.port for p in started]
        start = time.time() + _lead_s(n, await _warm_rate(b, ports))
        bodies = [{"fire_at": start + i / s.steady_rate, "url": hook(recv)} for i in range(n)]
        made = await group.run_list(
            ports, bodies, connections=s.connections, timeout_s=start - time.time() + 60
        )
        created_before = time.time() < start
        await asyncio.sleep(max(0.0, start - time.time()))
        meter = Meter(pg, url, started)
        await meter.mark()
        probe = await group.run_rate(ports, FAR, rate=s.probe_rate, duration_s=s.steady_s)
        got = await deliveries(recv, made.ok, start + s.steady_s, s.stall_s)
        recorded = await _recorded(pg, url, got["unique"])
        # the probe's creates are in these figures too (5% of the deliveries at full size)
        costs = await meter.since(got["unique"], "delivered")
    p = probe.summary()
    return {
        "nodes": target.nodes,
        "created": made.ok,
        "created_before_start": created_before,
        "by_node": got["by_node"],
        "outcomes_recorded": recorded,
        **_delivery_figures(got),
        "create_p50_ms": p["p50_ms"],
        "create_p99_ms": p["p99_ms"],
        "create_errors": p["errors"],
        **costs,
    }


SCENARIOS = {"create": create, "burst": burst, "steady": steady}

VERSUS_SQLITE = {"create": "rate", "burst": "last_after_T_s", "steady": "late_p99_ms"}
"""The figure of each scenario compared with the single SQLite daemon's in the same run."""

VERSUS_ONE_NODE = {"create": "rate", "burst": "delivery_rate"}
"""The throughput compared with one PostgreSQL node's in the same run."""


def compare(line: dict[str, Any], same_run: dict[str, dict[str, Any]]) -> None:
    """Add `vs_sqlite` and `vs_one_node` to a PostgreSQL target's line, same run."""
    scenario = line["scenario"]
    for key, base_name, fields in (
        ("vs_sqlite", "timerd", VERSUS_SQLITE),
        ("vs_one_node", "timerd-pg", VERSUS_ONE_NODE),
    ):
        field = fields.get(scenario)
        base = same_run.get(base_name, {})
        mine, theirs = line.get(field or ""), base.get(field or "")
        if isinstance(mine, int | float) and isinstance(theirs, int | float) and theirs > 0:
            line[key] = round(mine / theirs, 3)
    if scenario == "create" and isinstance(same_run.get("timerd", {}).get("rate"), int | float):
        base_rate = same_run["timerd"]["rate"]
        if base_rate > 0:
            line["per_node_vs_sqlite"] = round(line.get("rate_per_node", 0) / base_rate, 3)
