"""The PostgreSQL section of the report: nodes beside the single SQLite daemon, same runs.

Each cell is the median over runs with the range (min-max) after it: the machine is shared,
and the ranges say how far to trust a ratio. The verdicts are issue 15's targets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from stats import median

COLUMNS: dict[str, tuple[str, ...]] = {
    "create": ("rate", "rate_per_node", "per_node_vs_sqlite", "vs_one_node", "p99_ms",
               "round_trips_per_create", "node_cpu_ms_per_create", "pg_cpu_ms_per_create",
               "server_cpu"),
    "burst": ("last_after_T_s", "vs_sqlite", "delivery_rate", "vs_one_node", "missing",
              "duplicates", "round_trips_per_delivered", "round_trips_per_create",
              "node_cpu_ms_per_delivered", "pg_cpu_ms_per_delivered"),
    "steady": ("late_p50_ms", "late_p99_ms", "vs_sqlite", "late_max_ms", "missing",
               "duplicates", "create_p99_ms", "round_trips_per_delivered",
               "node_cpu_ms_per_delivered", "pg_cpu_ms_per_delivered"),
}  # fmt: skip
"""The SQLite daemon's rows show the columns it has; the ratios are the nodes' own."""

Check = Callable[[dict[str, float]], bool]

GOALS: dict[tuple[str, str], tuple[str, Check]] = {
    ("create", "timerd-pg"): (
        "creates/s per node >= 0.5 x SQLite's",
        lambda m: m.get("per_node_vs_sqlite", 0) >= 0.5,
    ),
    ("burst", "timerd-pg3"): (
        "20k burst delivered <= 2.5 s after T on 3 nodes, none missing or twice",
        lambda m: (
            m.get("last_after_T_s", 99) <= 2.5
            and m.get("missing", 1) == 0
            and m.get("duplicates", 1) == 0
        ),
    ),
    ("steady", "timerd-pg3"): (
        "late p99 <= 2 x the SQLite daemon's, no duplicate",
        lambda m: m.get("vs_sqlite", 99) <= 2.0 and m.get("duplicates", 1) == 0,
    ),
}

SHOWN = ("timerd", "timerd-pg", "timerd-pg2", "timerd-pg3")


def _cell(values: list[float]) -> str:
    def fmt(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"

    if not values:
        return ""
    mid = median(values)
    lo, hi = min(values), max(values)
    return fmt(mid) if lo == hi else f"{fmt(mid)} ({fmt(lo)}-{fmt(hi)})"


def table(lines: list[dict[str, Any]]) -> str:
    """Markdown tables for the scenarios where a PostgreSQL target ran; "" when none did."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line.get("kind") == "run" and "error" not in line and line["target"] in SHOWN:
            grouped[(line["scenario"], line["target"])].append(line)
    parts: list[str] = []
    for scenario, columns in COLUMNS.items():
        present = [t for t in SHOWN if (scenario, t) in grouped]
        if not any(t != "timerd" for t in present):
            continue
        head = ["target", "runs", *columns, "issue 15 target"]
        parts.append(f"\n### {scenario}: PostgreSQL nodes beside the SQLite daemon\n")
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "---|" * len(head))
        for target in present:
            runs = grouped[(scenario, target)]
            cells = [target, str(len(runs))]
            values: dict[str, float] = {}
            for column in columns:
                numbers = [r[column] for r in runs if isinstance(r.get(column), int | float)]
                if numbers:
                    values[column] = median(numbers)
                cells.append(_cell(numbers))
            goal = GOALS.get((scenario, target))
            cells.append(f"{'met' if goal[1](values) else 'MISSED'} ({goal[0]})" if goal else "")
            parts.append("| " + " | ".join(cells) + " |")
    if parts:
        parts.append(
            "\nAll nodes and PostgreSQL share the server core (cpu0); the load generator and "
            "receiver have cpu1. Throughput across nodes is capped by that one core: use the "
            "CPU ms per timer of the nodes and of PostgreSQL to size a machine with more cores."
        )
    return "\n".join(parts)
