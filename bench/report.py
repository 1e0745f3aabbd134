"""Turn the per-run JSON lines into one Markdown table of medians, with timerd's targets.

Ratios are computed per run (against the ceiling measured in that same run) and only then
reduced to a median, so a slow minute on the shared machine moves both sides together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pgreport
from stats import median

COLUMNS: dict[str, tuple[str, ...]] = {
    "create": ("rate", "p50_ms", "p99_ms", "ratio", "per_cpu_s", "ratio_cpu", "server_cpu",
               "loadgen_cpu"),
    "get": ("rate", "p50_ms", "p99_ms", "ratio", "per_cpu_s", "ratio_cpu", "server_cpu",
            "loadgen_cpu"),
    "batch": ("rate", "p50_ms", "p99_ms", "ratio", "per_cpu_s", "ratio_cpu", "server_cpu"),
    "burst": ("last_after_T_s", "delivered", "missing", "duplicates", "late_p99_ms",
              "dropped_reported"),
    "steady": ("late_p50_ms", "late_p99_ms", "late_max_ms", "missing", "duplicates",
               "create_p99_ms"),
    "live": ("late_p50_ms", "late_p99_ms", "late_max_ms", "missing", "duplicates",
             "create_p99_ms", "loadgen_cpu"),
    "catchup": ("rate", "create_p99_ms", "missing", "duplicates", "start_to_last_s"),
}  # fmt: skip

SCALE_COLUMNS = ("boot_s", "boot_vs_base", "vmhwm_mb", "vmrss_mb", "late_p99_ms", "missing")

Check = Callable[[dict[str, float]], bool]

TARGETS: dict[str, tuple[str, Check]] = {
    "create": ("ratio >= 0.75", lambda m: m.get("ratio", 0) >= 0.75),
    "get": ("ratio >= 0.6", lambda m: m.get("ratio", 0) >= 0.6),
    "batch": ("ratio >= 0.5", lambda m: m.get("ratio", 0) >= 0.5),
    "burst": (
        "last <= 2.5 s after T, none missing or twice",
        lambda m: (
            m.get("last_after_T_s", 99) <= 2.5
            and m.get("missing", 1) == 0
            and m.get("duplicates", 1) == 0
        ),
    ),
    "steady": (
        "late p99 <= 10 ms, create p99 <= 20 ms",
        lambda m: m.get("late_p99_ms", 1e9) <= 10 and m.get("create_p99_ms", 1e9) <= 20,
    ),
    "live": (
        "late p99 <= 10 ms, create p99 <= 20 ms",
        lambda m: m.get("late_p99_ms", 1e9) <= 10 and m.get("create_p99_ms", 1e9) <= 20,
    ),
    "catchup": (
        ">= 5000/s, create p99 <= 50 ms",
        lambda m: m.get("rate", 0) >= 5000 and m.get("create_p99_ms", 1e9) <= 50,
    ),
}


def medians(lines: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """Median of each numeric column per (scenario, target), over runs without errors."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line.get("kind") == "run" and "error" not in line and line["scenario"] != "scale":
            grouped[(line["scenario"], line["target"])].append(line)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, runs in grouped.items():
        figures: dict[str, float] = {"runs": len(runs)}
        for column in COLUMNS.get(key[0], ()):
            values = [r[column] for r in runs if isinstance(r.get(column), int | float)]
            if values:
                figures[column] = round(median(values), 3)
        out[key] = figures
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def table(lines: list[dict[str, Any]]) -> str:
    """A Markdown report: one table per scenario, medians over runs, timerd's target verdict."""
    parts: list[str] = []
    med = medians(lines)
    for scenario, columns in COLUMNS.items():
        rows = [(t, m) for (s, t), m in med.items() if s == scenario]
        if not rows:
            continue
        goal = TARGETS.get(scenario)
        head = ["target", "runs", *columns, *(["timerd target"] if goal else [])]
        parts.append(f"\n### {scenario}\n")
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "---|" * len(head))
        for target, figures in rows:
            cells = [target, _cell(figures.get("runs")), *(_cell(figures.get(c)) for c in columns)]
            if goal:
                verdict = ("met" if goal[1](figures) else "MISSED") + f" ({goal[0]})"
                cells.append(verdict if target == "timerd" else "")
            parts.append("| " + " | ".join(cells) + " |")
    scale = [line for line in lines if line.get("scenario") == "scale" and "sizes" in line]
    for line in scale:
        parts.append(f"\n### scale ({line['target']}, run {line['run']}; {line['loaded_via']})\n")
        head = ["pending", *SCALE_COLUMNS, "load_s", "db_mb"]
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "---|" * len(head))
        for row in line["sizes"]:
            parts.append("| " + " | ".join(_cell(row.get(c)) for c in head) + " |")
        parts.append(
            "\ntimerd target: 10M pending in < 250 MB RSS; boot < 1 s at 10M, within 2x of 10k"
        )
    parts.append(pgreport.table(lines))
    return "\n".join(parts)


def main() -> None:
    """Print the table for JSON Lines files written by earlier runs (`--out`)."""
    import json
    import sys

    lines = [
        json.loads(text)
        for name in sys.argv[1:]
        for text in open(name).read().splitlines()  # noqa: SIM115 - short-lived script
        if text.startswith("{")
    ]
    print(table(lines))


if __name__ == "__main__":
    main()
