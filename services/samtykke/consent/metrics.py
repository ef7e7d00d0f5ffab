"""Prometheus series of the consent service (bounded labels: purpose, status, source, topic)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from samtykke.adapters.metrics import LATENCY_BUCKETS
from samtykke.domain.events import ConsentChanged


class ConsentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.changes = Counter(
            "samtykke_consent_changes_total",
            "Consent changes recorded",
            ["purpose", "status", "source"],
            registry=registry,
        )
        self.outbox_backlog = Gauge("samtykke_outbox_backlog", "Outbox rows not yet published", registry=registry)
        self.outbox_oldest_age = Gauge(
            "samtykke_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row",
            registry=registry,
        )
        self.published = Counter(
            "samtykke_relay_published_total",
            "Outbox rows published to Kafka",
            ["topic"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "samtykke_relay_publish_latency_seconds",
            "Outbox row commit to Kafka acknowledgement",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.relay_failures = Counter(
            "samtykke_relay_failures_total",
            "Relay publish attempts that failed and will be retried",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "samtykke_relay_dead_letters_total",
            "Outbox rows the relay could not encode and moved to the outbox dead letters",
            ["topic"],
            registry=registry,
        )
        self.outbox_dead_letters = Gauge(
            "samtykke_outbox_dead_letters",
            "Outbox dead letters waiting for an operator (their subjects are held: the gate says stale)",
            registry=registry,
        )
        self.watermark_through = Gauge(
            "samtykke_relay_watermark_through_seconds",
            "Commit instant (database clock, Unix seconds) of the last watermark this relay published",
            registry=registry,
        )
        self.watermark_lag = Gauge(
            "samtykke_relay_watermark_lag_seconds",
            "Seconds since the last published watermark's commit instant, at scrape time (grows while the "
            "relay cannot publish; absent before the first watermark)",
            registry=registry,
        )
        self.watermark_lag.set_function(self._watermark_lag)
        self._last_through: float | None = None
        self.relay_epoch = Gauge(
            "samtykke_relay_leader_epoch",
            "The relay leadership epoch this replica holds (0: not the leader)",
            registry=registry,
        )
        self.expired = Counter(
            "samtykke_lifecycle_expired_total",
            "Grants the sweeper turned into expired changes",
            registry=registry,
        )
        self.purged = Counter(
            "samtykke_lifecycle_purged_total",
            "Ledger rows purged after their retention period",
            registry=registry,
        )

    def watermark_published(self, through: datetime) -> None:
        self._last_through = through.timestamp()
        self.watermark_through.set(self._last_through)

    def _watermark_lag(self) -> float:
        # measured when scraped, so it keeps growing exactly when the relay is stuck
        return float("nan") if self._last_through is None else max(0.0, time.time() - self._last_through)

    def count_changes(self, changes: Iterable[ConsentChanged]) -> None:
        for change in changes:
            self.changes.labels(change.purpose, change.status, change.source).inc()
