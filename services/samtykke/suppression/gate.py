"""SuppressionGate: the service's use cases — decide one target or many, under the freshness bound.

Fail closed: until the index has caught up, and whenever it is older than `max_lag_seconds`, every
decision is blocked with reason `stale` first (or the request is refused with 503, by setting); never allowed on doubt.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from samtykke.domain.catalog import Purpose
from samtykke.domain.suppression import CheckPlan, Reason, Verdict

from .index import SuppressionIndex
from .metrics import SuppressionMetrics
from .targets import Target


class IndexStale(RuntimeError):
    """The index is older than the bound and the service is set to refuse (HTTP 503)."""

    def __init__(self, age: float) -> None:
        super().__init__(f"index is {age:.1f}s old")
        self.age = age


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The moment a request is decided at: the check time, whether stale, and the index position."""

    at: float
    evaluated_at: float
    stale: bool
    position: dict[str, dict[str, int]]


class SuppressionGate:
    def __init__(
        self,
        index: SuppressionIndex,
        age: Callable[[], float],
        caught_up: Callable[[], bool],
        max_lag_seconds: float,
        refuse_when_stale: bool,
        metrics: SuppressionMetrics,
    ) -> None:
        self.index = index
        self._age = age
        self._caught_up = caught_up
        self._max_lag = max_lag_seconds
        self._refuse = refuse_when_stale
        self.metrics = metrics

    def index_age(self) -> float:
        return self._age()

    def is_stale(self) -> bool:
        # before the replay at start-up has caught up, the index is behind by definition
        return not self._caught_up() or self._age() > self._max_lag

    def snapshot(self, at: float | None) -> Snapshot:
        age = self._age()
        stale = not self._caught_up() or age > self._max_lag
        if stale and self._refuse:
            raise IndexStale(age)
        now = time.time()
        return Snapshot(at if at is not None else now, now, stale, self.index.position())

    def plan(self, purpose: Purpose, channel: str | None) -> CheckPlan:
        plan: CheckPlan = self.index.rules.plan(purpose, channel)
        return plan

    def decide(self, target: Target, plan: CheckPlan, snap: Snapshot) -> tuple[Verdict, tuple[str, ...]]:
        if target.by_subject:
            verdict = self.index.decide(target.key, plan, snap.at)
            holders: tuple[str, ...] = (target.key,) if target.key in self.index.subjects else ()
        else:
            verdict, holders = self.index.decide_hash(target.key, plan, snap.at)
        if snap.stale:
            verdict = _stale(verdict)
        return verdict, holders

    def decide_one(self, target: Target, plan: CheckPlan, snap: Snapshot) -> tuple[Verdict, tuple[str, ...]]:
        started = time.perf_counter()
        verdict, holders = self.decide(target, plan, snap)
        self.metrics.count(Tally({verdict.reasons: 1}))
        self.metrics.check_latency.labels("single").observe(time.perf_counter() - started)
        return verdict, holders

    def decide_many(
        self, targets: Iterable[Target], plan: CheckPlan, snap: Snapshot, tally: Tally[tuple[Reason, ...]]
    ) -> Iterator[tuple[Verdict, tuple[str, ...]]]:
        """Decide in bulk; the caller hands `tally` (decisions by reasons) to the metrics once."""
        subjects, decide, at = self.index.subjects, self.index.decide, snap.at
        for target in targets:
            if target.by_subject:  # the common case, inlined: campaign lists carry subject ids
                key = target.key
                verdict = decide(key, plan, at)
                holders: tuple[str, ...] = (key,) if key in subjects else ()
            else:
                verdict, holders = self.index.decide_hash(target.key, plan, at)
            if snap.stale:
                verdict = _stale(verdict)
            tally[verdict.reasons] += 1
            yield verdict, holders


def _stale(verdict: Verdict) -> Verdict:
    reasons = (Reason.STALE, *(r for r in verdict.reasons if r is not Reason.STALE))
    return Verdict(False, reasons, None, verdict.evidence)
