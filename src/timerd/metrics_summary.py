"""Headline figures read from timerd's Prometheus text: counts, totals, lateness quantiles.

Shared by `timerd stats` (which scrapes `/metrics` over HTTP) and the status page's summary
(which renders the daemon's own registry). Pure functions over text: no I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from timerd.models import Status

LATENESS = "timerd_fire_lateness_seconds"
OVERDUE = "timerd_fire_overdue_seconds"


class NotTimerdMetrics(ValueError):
    """The text is not Prometheus exposition from timerd."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One histogram bucket: observations at or below `le` seconds (cumulative)."""

    le: float
    count: int


@dataclass(frozen=True, slots=True)
class Figures:
    """What an operator looks at first."""

    timers: dict[str, int]
    created: int
    delivered: int
    retried: int
    failed: int
    heap_size: int
    in_flight: int
    lateness: tuple[Bucket, ...]
    overdue: tuple[Bucket, ...] = ()

    @property
    def lateness_count(self) -> int:
        """Return how many first attempts the lateness histogram holds."""
        return self.lateness[-1].count if self.lateness else 0

    @property
    def overdue_count(self) -> int:
        """Return how many first attempts started late because they were due before."""
        return self.overdue[-1].count if self.overdue else 0

    def lateness_quantile_s(self, q: float) -> float | None:
        """Return the estimated `q` quantile of fire lateness in seconds, or None if empty.

        `math.inf` means beyond the highest bucket: no estimate, only a lower bound.
        """
        return histogram_quantile(q, self.lateness)

    def lateness_text(self, q: float) -> str:
        """Return the `q` quantile of fire lateness for people (`over 1 d` past the top bucket)."""
        return quantile_text(histogram_quantile(q, self.lateness), self.lateness)

    def to_json(self) -> dict[str, Any]:
        """Return the figures as plain JSON values (infinite bounds as the string `+Inf`)."""
        return {
            "timers": dict(self.timers),
            "created": self.created,
            "deliveries": {
                "delivered": self.delivered,
                "retried": self.retried,
                "failed": self.failed,
            },
            "heap_size": self.heap_size,
            "in_flight": self.in_flight,
            "lateness_s": _histogram_json(self.lateness),
            "overdue_s": _histogram_json(self.overdue),
        }


def _histogram_json(buckets: Sequence[Bucket]) -> dict[str, Any]:
    """Return a histogram's count, p50, p99 and buckets (beyond the top bucket: `+Inf`)."""

    def number(value: float | None) -> float | str | None:
        return value if value is None or math.isfinite(value) else "+Inf"

    return {
        "count": buckets[-1].count if buckets else 0,
        "p50": number(histogram_quantile(0.5, buckets)),
        "p99": number(histogram_quantile(0.99, buckets)),
        "buckets": [[number(b.le), b.count] for b in buckets],
    }


def quantile_text(value: float | None, buckets: Sequence[Bucket]) -> str:
    """Return an estimated quantile for people; past the top bucket, say what is known."""
    if value is None or math.isfinite(value):
        return format_seconds(value)
    finite = [b.le for b in buckets if math.isfinite(b.le)]
    return f"over {format_seconds(max(finite))}" if finite else "-"


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float | None:
    """Estimate a quantile from cumulative buckets the way Prometheus does.

    Linear interpolation inside the bucket that holds the rank; a rank in the `+Inf` bucket
    answers `math.inf` (Prometheus answers the highest bound, which reads like a measurement).
    Returns None when there are no observations.
    """
    ordered = sorted(buckets, key=lambda b: b.le)
    if not ordered or ordered[-1].count <= 0:
        return None
    total = ordered[-1].count
    rank = q * total
    lower, below = 0.0, 0
    for bucket in ordered:
        if bucket.count >= rank and bucket.count > below:
            if math.isinf(bucket.le):
                return math.inf
            return lower + (bucket.le - lower) * (rank - below) / (bucket.count - below)
        lower, below = bucket.le, bucket.count
    return lower


def parse_figures(text: str) -> Figures:
    """Read the headline figures from Prometheus text; raise NotTimerdMetrics otherwise."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    except (ValueError, TypeError, IndexError) as exc:
        raise NotTimerdMetrics(f"not Prometheus text: {exc}") from None
    if not any(name.startswith("timerd_") for name, _ in values):
        raise NotTimerdMetrics("no timerd_ metrics in the answer")

    def one(name: str, **labels: str) -> int:
        return int(values.get((name, tuple(sorted(labels.items()))), 0))

    def buckets(histogram: str) -> tuple[Bucket, ...]:
        found = (
            Bucket(float(dict(labels)["le"]), int(value))
            for (name, labels), value in values.items()
            if name == f"{histogram}_bucket"
        )
        return tuple(sorted(found, key=lambda b: b.le))

    return Figures(
        timers={s.value: one("timerd_timers", status=s.value) for s in Status},
        created=one("timerd_timers_created_total"),
        delivered=one("timerd_deliveries_total", outcome="delivered"),
        retried=one("timerd_deliveries_total", outcome="retry"),
        failed=one("timerd_deliveries_total", outcome="failed"),
        heap_size=one("timerd_scheduler_heap_size"),
        in_flight=one("timerd_outbound_in_flight"),
        lateness=buckets(LATENESS),
        overdue=buckets(OVERDUE),
    )


def format_seconds(value: float | None) -> str:
    """Return a duration for people: `0.8 ms`, `12 ms`, `1.50 s`, `4.0 min`, `2.0 h`, `-`."""
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    if value < 2 * 3600:
        return f"{value / 60:.1f} min"
    if value < 2 * 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"
