"""The timerd benchmark harness: every scenario against every target, ratios within each run.

    .venv/bin/python bench/run.py                      # everything, 3 runs, scale 1M and 10M
    .venv/bin/python bench/run.py --smoke              # seconds-long, tiny counts (CI)
    .venv/bin/python bench/run.py --scenarios create,get --targets ceiling,timerd --runs 5

Prints one JSON line per (run, scenario, target), then a Markdown table of medians over runs.
The machine is shared and noisy, so each throughput is also given as a ratio to its ceiling
measured *in the same run*; the table's ratio is the median of those per-run ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import boot
import diskprobe
import pgcluster
import pgscenarios
import procs
import report
import scenarios
from targets import ALL, BENCH, DEFAULT, PgTarget, Target, unavailable

Scenario = Callable[[scenarios.Bench, Target], Awaitable[dict[str, Any]]]

SCENARIOS: dict[str, Scenario] = {
    "create": scenarios.create,
    "get": scenarios.get,
    "batch": scenarios.batch,
    "burst": scenarios.burst,
    "steady": scenarios.steady,
    "live": scenarios.live,
    "catchup": boot.catchup,
    "scale": boot.scale,
}

DISK_PROBE_S = 10.0
"""The disk's flush latency is recorded before the scenarios (diskprobe.py): its tail sets
a floor under create p99 with synchronous=full."""

RATIO_BASE = {"create": "ceiling", "get": "ceiling", "batch": "sqlite"}
"""Scenarios whose `rate` is also given as a fraction of another target's, same run."""


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "nproc": os.cpu_count(),
        "uname": " ".join(platform.uname()),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "pinned": procs.can_pin(),
        "timerd_commit": _git("rev-parse", "--short", "HEAD"),
        "src_dirty": bool(_git("status", "--porcelain", "--", "src")),
    }


def _git(*args: str) -> str:
    """The daemon changes while it is benchmarked: record which code each run measured."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=BENCH.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def emit(line: dict[str, Any], sink: Any) -> None:
    text = json.dumps(line, sort_keys=False)
    print(text, flush=True)
    sink.write(text + "\n")
    sink.flush()


async def bench(args: argparse.Namespace, sink: Any) -> list[dict[str, Any]]:
    sizes = scenarios.SMOKE if args.smoke else scenarios.FULL
    if args.scale_sizes is not None:
        picked = tuple(int(x) for x in args.scale_sizes.split(",") if x)
        sizes = scenarios.Sizes(**{**sizes.__dict__, "scale": picked})
    wanted = [ALL[name] for name in args.targets.split(",")]
    targets: list[Target] = []
    for target in wanted:
        why = unavailable(target)
        if why:
            print(f"skipping target {target.name}: {why}", file=sys.stderr)
            emit({"kind": "skip", "target": target.name, "reason": why}, sink)
        else:
            targets.append(target)
    names = args.scenarios.split(",")
    lines: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="timerd-bench-", dir=args.workdir) as tmp:
        ctx = scenarios.Bench(sizes, Path(tmp))
        ctx.pg = await start_postgres(targets, sink)
        try:
            for run in range(1, args.runs + 1):
                for name in names:
                    if name == "scale" and run > args.scale_runs:
                        continue
                    lines += await one_scenario(ctx, name, targets, run, args.smoke, sink)
        finally:
            if ctx.pg is not None:
                ctx.pg.stop()
    return lines


async def start_postgres(targets: list[Target], sink: Any) -> pgcluster.BenchCluster | None:
    """Start the throwaway PostgreSQL when a target needs it; else drop those targets, loudly."""
    wanted = [t for t in targets if isinstance(t, PgTarget)]
    if not wanted:
        return None
    why = pgcluster.why_not()
    cluster = None
    if why is None:
        try:
            cluster = await asyncio.to_thread(pgcluster.start)
            await pgcluster.enable_statements(cluster)
        except Exception as exc:
            if cluster is not None:
                cluster.stop()
            cluster, why = None, f"the throwaway PostgreSQL did not start: {exc}"
    if cluster is None:
        for target in wanted:
            print(f"skipping target {target.name}: {why}", file=sys.stderr)
            emit({"kind": "skip", "target": target.name, "reason": why}, sink)
            targets.remove(target)
        return None
    emit({"kind": "postgres", "started_in_s": round(cluster.cluster.started_in_s, 2),
          "durable": True, "pinned_cpu": procs.SERVER_CPU}, sink)  # fmt: skip
    return cluster


async def one_scenario(
    ctx: scenarios.Bench, name: str, targets: list[Target], run: int, smoke: bool, sink: Any
) -> list[dict[str, Any]]:
    """Every target on scenario `name` once; ratios to the bases measured just before."""
    lines: list[dict[str, Any]] = []
    base: dict[str, Any] = {}
    same_run: dict[str, dict[str, Any]] = {}
    # the ratio bases first, then the SQLite daemon, then the nodes by count
    in_order = sorted(
        targets,
        key=lambda t: (
            t.name != RATIO_BASE.get(name),
            t.name != "timerd",
            t.nodes if isinstance(t, PgTarget) else 0,
        ),
    )
    for target in in_order:
        if name not in target.scenarios:
            continue
        line = await one(ctx, name, target, run, smoke)
        if RATIO_BASE.get(name) == target.name:
            base = line
        elif name in RATIO_BASE and base:
            add_ratios(line, base, RATIO_BASE[name])
        if isinstance(target, PgTarget):
            pgscenarios.compare(line, same_run)
        if "error" not in line:
            same_run[target.name] = line
        emit(line, sink)
        lines.append(line)
    return lines


def add_ratios(line: dict[str, Any], base: dict[str, Any], base_name: str) -> None:
    """Add `ratio` (throughput) and `ratio_cpu` (per server CPU-second) to the base."""
    for key, field in (("ratio", "rate"), ("ratio_cpu", "per_cpu_s")):
        mine, theirs = line.get(field), base.get(field)
        if isinstance(mine, int | float) and isinstance(theirs, int | float) and theirs > 0:
            line[key] = round(mine / theirs, 3)
    line["ratio_to"] = base_name


async def one(
    ctx: scenarios.Bench, name: str, target: Target, run: int, smoke: bool
) -> dict[str, Any]:
    """Run one scenario on one target; an error becomes part of the line, not a crash."""
    started, cores = time.monotonic(), procs.cpu_times()
    head = {"kind": "run", "scenario": name, "target": target.name, "run": run, "smoke": smoke}
    try:
        scenario = pgscenarios.SCENARIOS[name] if isinstance(target, PgTarget) else SCENARIOS[name]
        figures = await scenario(ctx, target)
    except Exception as exc:
        traceback.print_exc()
        figures = {"error": f"{type(exc).__name__}: {exc}"}
    # how busy each core was, by anyone: the server has cpu0 and the client cpu1 to itself
    # only on a quiet machine, and the load average says how quiet it was
    noise = {**procs.busy_since(cores), "loadavg_1m": round(os.getloadavg()[0], 2)}
    return {**head, **figures, **noise, "elapsed_s": round(time.monotonic() - started, 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--targets", default=",".join(DEFAULT), help="comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (median)")
    parser.add_argument("--scale-runs", type=int, default=1, help="runs of `scale` (slow)")
    parser.add_argument(
        "--scale-sizes", help="pending timers for `scale`, e.g. 1000000,10000000 (base 10k)"
    )
    parser.add_argument("--smoke", action="store_true", help="seconds-long, tiny counts")
    parser.add_argument("--workdir", help="where the temporary databases go")
    parser.add_argument("--out", type=Path, help="JSON Lines file (default bench/results/)")
    args = parser.parse_args(argv)
    for name in args.scenarios.split(","):
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    for name in args.targets.split(","):
        if name not in ALL:
            parser.error(f"unknown target {name!r}; choose from {', '.join(ALL)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _interrupt(signum: int, _frame: Any) -> None:
    """SIGTERM acts like Ctrl-C, so every started server is stopped on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    pinned = procs.pin_self(procs.CLIENT_CPU)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or BENCH / "results" / f"{stamp}{'-smoke' if args.smoke else ''}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    import uvloop

    with out.open("w") as sink:
        disk = diskprobe.fdatasync_latency(
            Path(args.workdir or tempfile.gettempdir()), 0.3 if args.smoke else DISK_PROBE_S
        )
        emit({"kind": "meta", "machine": machine(), "client_pinned": pinned, "disk_fsync": disk,
              "argv": sys.argv[1:]}, sink)  # fmt: skip
        lines = uvloop.run(bench(args, sink))
    table = report.table(lines)
    print(table)
    out.with_suffix(".md").write_text(table + "\n")
    print(f"\nresults: {out}", file=sys.stderr)
    return 1 if any("error" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
