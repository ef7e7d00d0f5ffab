"""Prometheus series of one projector, in its own registry. Labels are bounded: domain, topic
name, partition number, outcome and dead-letter kind; never a subject id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PROPAGATION_BUCKETS = (
    0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class ProjectionMetrics:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.registry = CollectorRegistry()
        self.events = Counter(
            "samtykke_projection_events_total",
            "Events consumed: applied, unchanged (duplicate, stale or not this domain's) or dead_letter",
            ["domain", "topic", "outcome"], registry=self.registry,
        )
        self.batch_size = Histogram(
            "samtykke_projection_batch_size", "Messages per applied batch (one transaction each)",
            ["domain"], buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "samtykke_projection_commit_seconds", "Time to write one batch and its offsets",
            ["domain"], registry=self.registry,
        )
        self.lag = Gauge(
            "samtykke_projection_consumer_lag", "Messages between the last applied offset and the partition end",
            ["domain", "topic", "partition"], registry=self.registry,
        )
        self.propagation = Histogram(
            "samtykke_projection_propagation_seconds",
            "End-to-end propagation: event recorded_at to its row committed",
            ["domain"], buckets=PROPAGATION_BUCKETS, registry=self.registry,
        )
        self.dead_letters = Counter(
            "samtykke_projection_dead_letters_total", "Messages sent to the dead-letter queue, by reason kind",
            ["domain", "reason"], registry=self.registry,
        )
        self.retries = Counter(
            "samtykke_projection_retries_total", "Transient failures retried with backoff, by stage",
            ["domain", "stage"], registry=self.registry,
        )
