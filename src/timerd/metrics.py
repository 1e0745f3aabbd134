"""Prometheus metrics, one registry per daemon so tests can run several side by side."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from timerd.models import Outcome, Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# late starts reach hours (a daemon down overnight): buckets up to a day, so a quantile is a
# measured estimate, not the top bucket's bound
_LATENESS_BUCKETS = (*_LATENCY_BUCKETS, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
_OVERDUE_BUCKETS = (*_LATENESS_BUCKETS, 7 * 24 * 3600, 30 * 24 * 3600)  # a machine off for weeks


class Metrics:
    """Every metric timerd exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.created = Counter("timerd_timers_created", "Timers created.", registry=r)
        self.deliveries = Counter(
            "timerd_deliveries", "Delivery attempts by outcome.", ["outcome"], registry=r
        )
        # bound once: labels() per delivery was a lookup under a lock, thousands a second
        self.deliveries_by_outcome = {o: self.deliveries.labels(o.value) for o in Outcome}
        self.delivery_seconds = Histogram(
            "timerd_delivery_duration_seconds",
            "Time one webhook request took.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lateness_seconds = Histogram(
            "timerd_fire_lateness_seconds",
            "How long after its due time a timer's first attempt started (scheduling lateness).",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.overdue_seconds = Histogram(
            "timerd_fire_overdue_seconds",
            "The same for timers due over 1 s before they were created or changed, or while "
            "timerd was down: not scheduling lateness.",
            buckets=_OVERDUE_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "timerd_db_commit_seconds",
            "Time one group commit took.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_writes = Counter(
            "timerd_db_writes", "Writes committed (many per commit).", registry=r
        )
        self.timers = Gauge("timerd_timers", "Timers by status.", ["status"], registry=r)
        self.heap_size = Gauge("timerd_scheduler_heap_size", "Timers held in memory.", registry=r)
        self.in_flight = Gauge(
            "timerd_outbound_in_flight", "Webhook requests in flight.", registry=r
        )
        self.write_queue = Gauge(
            "timerd_write_queue", "Writes waiting for the next commit.", registry=r
        )
        self.clock_offset = Gauge(
            "timerd_clock_offset_seconds",
            "This node's clock minus the database's, measured each heartbeat (PostgreSQL; "
            "0 on SQLite).",
            registry=r,
        )

    def on_commit(self, duration_s: float, writes: int) -> None:
        """Record one group commit."""
        self.commit_seconds.observe(duration_s)
        self.commit_writes.inc(writes)

    def set_counts(self, counts: dict[Status, int]) -> None:
        """Publish the per-status timer counts."""
        for status, count in counts.items():
            self.timers.labels(status.value).set(count)

    def render(self) -> bytes:
        """Return the text exposition of every metric."""
        return generate_latest(self.registry)
