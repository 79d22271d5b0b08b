"""Prometheus metrics of one proxy, in a registry of its own (several apps in one process, as
in tests, never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from codyn.serve.log import DecisionLog, DecisionRow

DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
JOURNAL_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class _LogCollector(Collector):
    """Reads the decision log's buffer and counters at scrape time."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log

    def collect(self):  # type: ignore[no-untyped-def]
        stats = self.log.stats
        yield GaugeMetricFamily(
            "codyn_log_buffered_rows", "Decision rows waiting for the database.", self.log.buffered
        )
        yield GaugeMetricFamily(
            "codyn_log_database_up", "1 if the last database write succeeded.", stats.database_up
        )
        for name, value, text in (
            ("codyn_log_rows_written", stats.written, "Decision rows written."),
            ("codyn_log_rows_dropped", stats.dropped, "Decision rows dropped: buffer full."),
            ("codyn_log_write_errors", stats.write_errors, "Failed database writes."),
            ("codyn_log_rows_replayed", stats.replayed, "Rows replayed from journals at start."),
            (
                "codyn_journal_write_errors",
                self.log.journal.errors if self.log.journal is not None else 0,
                "Failed journal writes.",
            ),
        ):
            yield CounterMetricFamily(name, text, value)


class Metrics:
    """Request, model, fallback, cost and latency metrics, recorded from finished rows."""

    def __init__(self, log: DecisionLog) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "codyn_requests", "Requests by route, answering model and HTTP status.",
            ["route", "model", "status"], registry=r,
        )  # fmt: skip
        self.chosen = Counter(
            "codyn_chosen", "Policy's first choice by route and model.", ["route", "model"],
            registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "codyn_fallbacks", "Requests answered by a later model of the ranking.",
            ["route", "model"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "codyn_cost_usd", "Spend in USD by route and model.", ["route", "model"], registry=r
        )
        self.decision = Histogram(
            "codyn_decision_seconds", "Routing decision time.", ["route"],
            buckets=DECISION_BUCKETS, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "codyn_request_seconds", "End-to-end request time in the proxy.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("codyn_requests_in_flight", "Requests being served.", registry=r)
        self.journal_wait = Histogram(
            "codyn_journal_wait_seconds",
            "Time a response waited for its journal record to reach the disk.",
            buckets=JOURNAL_BUCKETS, registry=r,
        )  # fmt: skip
        r.register(_LogCollector(log))

    def record(self, row: DecisionRow) -> None:
        route = row.route or ""
        self.requests.labels(route, row.model or "", str(row.status)).inc()
        if row.chosen is not None:
            self.chosen.labels(route, row.chosen).inc()
        if row.fallback and row.model is not None:
            self.fallbacks.labels(route, row.model).inc()
        if row.cost_usd:
            self.cost.labels(route, row.model or "").inc(row.cost_usd)
        if row.decision_ms is not None:
            self.decision.labels(route).observe(row.decision_ms / 1000.0)
        if row.latency_ms is not None:
            self.latency.labels(route).observe(row.latency_ms / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
