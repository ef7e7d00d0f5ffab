"""Prometheus series of one projector, in its own registry. Labels are bounded: domain, topic
name, partition number, outcome and dead-letter kind; never a subject id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from samtykke.adapters.metrics import PROPAGATION_BUCKETS, service_registry

BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class ProjectionMetrics:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.registry = service_registry()
        self.events = Counter(
            "samtykke_projection_events_total",
            "Events consumed: applied, unchanged (duplicate, stale or not this domain's) or dead_letter",
            ["domain", "topic", "outcome"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "samtykke_projection_batch_size",
            "Messages per applied batch (one transaction each)",
            ["domain"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "samtykke_projection_commit_seconds",
            "Time to write one batch and its offsets",
            ["domain"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "samtykke_projection_consumer_lag",
            "Messages between the last applied offset and the partition end",
            ["domain", "topic", "partition"],
            registry=self.registry,
        )
        self.propagation = Histogram(
            "samtykke_projection_propagation_seconds",
            "End-to-end propagation: event recorded_at to its row committed",
            ["domain"],
            buckets=PROPAGATION_BUCKETS,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "samtykke_projection_dead_letters_total",
            "Messages sent to the dead-letter queue, by reason kind",
            ["domain", "reason"],
            registry=self.registry,
        )
        self.complete_through = Gauge(
            "samtykke_projection_complete_through_seconds",
            "Unix time of the newest commit instant the domain's tables are complete through (the watermark "
            "its stored positions reach); 0 before the first",
            ["domain"],
            registry=self.registry,
        )
        self.retries = Counter(
            "samtykke_projection_retries_total",
            "Transient failures retried with backoff, by stage",
            ["domain", "stage"],
            registry=self.registry,
        )
