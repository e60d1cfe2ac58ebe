"""Prometheus metrics, one registry per daemon (so tests can run several in one process)."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mailhooks.spool import SpoolStats

MetricT = TypeVar("MetricT", Counter, Histogram)


class Children(Generic[MetricT]):
    """A labelled metric's series by label values, each looked up once: `labels()` takes a
    lock and checks its values on every call, and the hot paths count every event."""

    def __init__(self, metric: MetricT) -> None:
        self._metric: MetricT = metric
        self._children: dict[tuple[str, ...], MetricT] = {}

    def __call__(self, *values: str) -> MetricT:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = Counter(
            "mailhooks_events_received", "Events accepted and spooled, by event type.",
            ["event"], registry=r,
        )
        self.events_rejected = Counter(
            "mailhooks_events_rejected", "Events refused at intake, by reason.",
            ["reason"], registry=r,
        )
        self.requests_denied = Counter(
            "mailhooks_api_requests_denied", "API requests refused for want of a role, by status "
            "(401: no valid token, 403: the wrong role).", ["status"], registry=r,
        )
        self.source_skipped = Counter(
            "mailhooks_source_records_skipped", "Mail-server records a source did not turn "
            "into events, by source and kind.", ["source", "kind"], registry=r,
        )
        self.deliveries = Counter(
            "mailhooks_deliveries", "Delivery attempts by webhook and outcome "
            "(success, retry, failed, dropped).", ["webhook", "outcome"], registry=r,
        )
        self.delivery_latency = Histogram(
            "mailhooks_delivery_duration_seconds", "Time one delivery request took.",
            ["webhook"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.end_to_end = Histogram(
            "mailhooks_event_to_delivery_seconds", "Time from intake to successful delivery.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300, 3600, 86400),
        )
        self.queue_depth = Gauge(
            "mailhooks_queue_depth", "Pending deliveries.", registry=r
        )
        self.oldest_pending = Gauge(
            "mailhooks_oldest_pending_seconds", "Age of the oldest pending delivery.", registry=r
        )
        self.failed_deliveries = Gauge(
            "mailhooks_failed_deliveries", "Deliveries that exhausted their retries "
            "and wait for a replay.", registry=r,
        )
        self.spool_bytes = Gauge(
            "mailhooks_spool_bytes",
            "Bytes of the spool in use; at spool.max_bytes intake answers 503.", registry=r,
        )
        self.reload_ok = Gauge(
            "mailhooks_config_last_reload_successful",
            "1 when the last reload loaded every file, 0 when a file was refused.", registry=r,
        )
        self.reload_time = Gauge(
            "mailhooks_config_last_reload_success_timestamp_seconds",
            "When the last fully successful reload happened.", registry=r,
        )
        self.config_info = Gauge(
            "mailhooks_config_info", "1 for the revision of the webhooks directory that runs: "
            "its git commit (-dirty when files differ from it), or sha256:... of its files.",
            ["revision"], registry=r,
        )
        self.started = Gauge(
            "mailhooks_start_time_seconds", "When the daemon started (unix time): with the "
            "counters, rates since the start.", registry=r,
        )
        self.started.set_to_current_time()
        self.webhooks_loaded = Gauge(
            "mailhooks_webhooks_loaded", "Webhooks running.", registry=r
        )
        self.circuit_open = Gauge(
            "mailhooks_circuit_open", "1 while a webhook's circuit breaker is open.",
            ["webhook"], registry=r,
        )
        self.paused = Gauge(
            "mailhooks_webhook_paused", "1 while the daemon has paused a webhook that only "
            "failed for pause_after; `mailhooks resume ID` or a change to its file resumes it.",
            ["webhook"], registry=r,
        )
        self.pushover_remaining = Gauge(
            "mailhooks_pushover_app_remaining", "Pushover messages left this month "
            "(X-Limit-App-Remaining).", registry=r,
        )

        self.received_by = Children(self.events_received)
        self.deliveries_by = Children(self.deliveries)
        self.delivery_latency_by = Children(self.delivery_latency)

    def observe_stats(self, stats: SpoolStats) -> None:
        self.queue_depth.set(stats.pending)
        self.failed_deliveries.set(stats.failed)
        self.spool_bytes.set(stats.size_bytes)
        oldest = 0.0 if stats.oldest_pending_at is None else time.time() - stats.oldest_pending_at
        self.oldest_pending.set(max(0.0, oldest))

    def render(self) -> bytes:
        return generate_latest(self.registry)
