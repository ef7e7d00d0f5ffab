"""SuppressionGate: the service's use cases — decide one target or many under the freshness bound,
list the suppressions, take in register snapshots — and the only way into the index.

Fail closed: until the index has caught up, and whenever it is older than `max_lag_seconds`, every
decision is blocked with reason `stale` first (or the request is refused with 503, by setting); never allowed on doubt.
The age is end to end (the feed's: now minus the commit instant of the newest watermark reached), and
a subject the newest watermark names as held back by the relay is answered `stale` whatever the age.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from samtykke.domain.catalog import Purpose
from samtykke.domain.model import SubjectId
from samtykke.domain.registers import Register, RegisterSnapshot
from samtykke.domain.suppression import CheckPlan, Reason, Verdict

from .changes import SuppressionChanges
from .index import Entries, SuppressionIndex
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
    held: frozenset[str] = frozenset()  # subjects with a committed change the relay could not publish


@dataclass(frozen=True, slots=True)
class RegisterInUse:
    """A register's snapshot in use and until when a send may rely on it."""

    snapshot: RegisterSnapshot
    fresh_until: float | None
    fresh: bool


class SuppressionGate:
    def __init__(
        self,
        index: SuppressionIndex,
        age: Callable[[], float],
        caught_up: Callable[[], bool],
        max_lag_seconds: float,
        refuse_when_stale: bool,
        metrics: SuppressionMetrics,
        held: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._index = index
        self._held = held
        self._age = age
        self._caught_up = caught_up
        self._max_lag = max_lag_seconds
        self._refuse = refuse_when_stale
        self.metrics = metrics

    # -- what the index holds ---------------------------------------------------------------
    def subject_count(self) -> int:
        return len(self._index)

    def position(self) -> dict[str, dict[str, int]]:
        return self._index.position()

    def purpose(self, code: str) -> Purpose | None:
        return self._index.rules.catalog.get(code)

    # -- freshness --------------------------------------------------------------------------
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
        return Snapshot(at if at is not None else now, now, stale, self._index.position(), self._held())

    def tick(self, now: float) -> None:
        """Let time pass: grants lapse and registers go stale without any event."""
        self._index.tick(now)

    # -- decisions --------------------------------------------------------------------------
    def plan(self, purpose: Purpose, channel: str | None) -> CheckPlan:
        plan: CheckPlan = self._index.rules.plan(purpose, channel)
        return plan

    def decide(self, target: Target, plan: CheckPlan, snap: Snapshot) -> tuple[Verdict, tuple[SubjectId, ...]]:
        if target.by_subject:
            subject_id = SubjectId(target.key)  # the parser checked it is one
            verdict = self._index.decide(subject_id, plan, snap.at)
            holders: tuple[SubjectId, ...] = (subject_id,) if subject_id in self._index.subjects else ()
        else:
            verdict, holders = self._index.decide_hash(target.key, plan, snap.at)
        if snap.stale or (snap.held and _held(snap.held, target, holders)):
            verdict = _stale(verdict)
        return verdict, holders

    def decide_one(self, target: Target, plan: CheckPlan, snap: Snapshot) -> tuple[Verdict, tuple[SubjectId, ...]]:
        started = time.perf_counter()
        verdict, holders = self.decide(target, plan, snap)
        self.metrics.count(Tally({verdict.reasons: 1}))
        self.metrics.check_latency.labels("single").observe(time.perf_counter() - started)
        return verdict, holders

    def decide_many(
        self, targets: Iterable[Target], plan: CheckPlan, snap: Snapshot, tally: Tally[tuple[Reason, ...]]
    ) -> Iterator[tuple[Verdict, tuple[SubjectId, ...]]]:
        """Decide in bulk; the caller hands `tally` (decisions by reasons) to the metrics once."""
        subjects, decide, at, held = self._index.subjects, self._index.decide, snap.at, snap.held
        for target in targets:
            if target.by_subject:  # the common case, inlined: campaign lists carry subject ids
                key = SubjectId(target.key)
                verdict = decide(key, plan, at)
                holders: tuple[SubjectId, ...] = (key,) if key in subjects else ()
            else:
                verdict, holders = self._index.decide_hash(target.key, plan, at)
            if snap.stale or (held and _held(held, target, holders)):
                verdict = _stale(verdict)
            tally[verdict.reasons] += 1
            yield verdict, holders

    # -- the suppression list ---------------------------------------------------------------
    def suppression_changes(self) -> SuppressionChanges:
        """The change feed; refused (IndexStale) while stale or not caught up: a list cannot fail closed."""
        changes = self._index.changes
        if changes is None or self.is_stale():
            raise IndexStale(float("nan") if changes is None else self.index_age())
        return changes

    def suppression_list(self, at: float) -> Iterator[tuple[SubjectId, Entries]]:
        """Each subject's explicit suppressions at `at`, for the subjects known when iteration starts
        (the feed goes on adding subjects while a long export is read)."""
        for state in list(self._index.subjects.values()):
            yield state.subject_id, self._index.entries(state, at)

    # -- registers --------------------------------------------------------------------------
    def register_in_use(self, register: Register, now: float) -> RegisterInUse | None:
        registers = self._index.registers
        snapshot = registers.snapshots.get(register)
        if snapshot is None:
            return None
        return RegisterInUse(snapshot, registers.fresh_until(register), registers.is_fresh(register, now))

    def install_register(self, snapshot: RegisterSnapshot, now: float) -> int:
        """Use a new register snapshot; returns how many indexed subjects it lists."""
        return self._index.install_register(snapshot, now)


def _held(held: frozenset[str], target: Target, holders: tuple[SubjectId, ...]) -> bool:
    return (target.by_subject and target.key in held) or any(h in held for h in holders)


def _stale(verdict: Verdict) -> Verdict:
    reasons = (Reason.STALE, *(r for r in verdict.reasons if r is not Reason.STALE))
    return Verdict(False, reasons, None, verdict.evidence)
