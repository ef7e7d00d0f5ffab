"""Prometheus series of the consent service (bounded labels: purpose, status, source, topic)."""

from __future__ import annotations

from collections.abc import Iterable

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

    def count_changes(self, changes: Iterable[ConsentChanged]) -> None:
        for change in changes:
            self.changes.labels(change.purpose, change.status, change.source).inc()
