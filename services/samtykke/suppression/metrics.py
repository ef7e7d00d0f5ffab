"""Prometheus series of the suppression service. Labels are bounded: result, reason, endpoint, topic."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from samtykke.adapters.metrics import LATENCY_BUCKETS, PROPAGATION_BUCKETS
from samtykke.domain.suppression import Reason


class SuppressionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "samtykke_suppression_decisions_total",
            "Decisions by result and reason (a blocked decision counts once per reason)",
            ["result", "reason"],
            registry=registry,
        )
        self.check_latency = Histogram(
            "samtykke_suppression_check_seconds",
            "Time to decide a request, by endpoint (HTTP excluded)",
            ["endpoint"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.propagation = Histogram(
            "samtykke_suppression_propagation_seconds",
            "End-to-end propagation: event recorded_at to "
            "applied to the index (live events only, not the start-up replay)",
            registry=registry,
            buckets=PROPAGATION_BUCKETS,
        )
        self.index_lag = Gauge(
            "samtykke_suppression_index_lag_messages",
            "Messages on the topics not yet applied to the index",
            registry=registry,
        )
        self.index_age = Gauge(
            "samtykke_suppression_index_age_seconds",
            "Seconds the index is behind what the consent service committed: now minus the newest watermark "
            "it has reached (since start when none), never less than since Kafka last confirmed it caught up; "
            "past the bound decisions are stale",
            registry=registry,
        )
        self.complete_through = Gauge(
            "samtykke_suppression_complete_through_seconds",
            "Unix time of the newest commit instant the index is complete through (the watermark it has "
            "reached); 0 before the first",
            registry=registry,
        )
        self.held_subjects = Gauge(
            "samtykke_suppression_held_subjects",
            "Subjects the newest watermark names as held back by the relay (answered stale)",
            registry=registry,
        )
        self.index_subjects = Gauge(
            "samtykke_suppression_index_subjects",
            "Subjects in the index",
            registry=registry,
        )
        self.applied = Counter(
            "samtykke_suppression_events_applied_total",
            "Events applied to the index",
            ["topic"],
            registry=registry,
        )
        self.undecodable = Counter(
            "samtykke_suppression_undecodable_total",
            "Messages the feed could not decode (sent to the DLQ)",
            ["topic"],
            registry=registry,
        )
        self.register_rows = Counter(
            "samtykke_suppression_register_rows_total",
            "Register file rows imported, by register and outcome",
            ["register", "outcome"],
            registry=registry,
        )

    def watch(self, age: Callable[[], float], subjects: Callable[[], int]) -> None:
        self.index_age.set_function(age)
        self.index_subjects.set_function(lambda: float(subjects()))

    def watch_completeness(self, through: Callable[[], datetime | None], held: Callable[[], frozenset[str]]) -> None:
        self.complete_through.set_function(lambda: _epoch(through()))
        self.held_subjects.set_function(lambda: float(len(held())))

    def count(self, tally: Tally[tuple[Reason, ...]]) -> None:
        """Add a batch's decisions at once, tallied by reasons (none: allowed): one update per series."""
        for reasons, n in tally.items():
            if not reasons:
                self.decisions.labels("allowed", "").inc(n)
            for reason in reasons:
                self.decisions.labels("blocked", reason.value).inc(n)


def _epoch(value: datetime | None) -> float:
    return 0.0 if value is None else value.timestamp()
