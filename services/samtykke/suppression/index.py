"""The in-memory suppression index: subjects folded from the topics, looked up by id or keyed hash.

Holds no clear identifier: phones and e-mails arrive (and are looked up) only as keyed hashes.
A hash maps to who held it when (`domain.holdings`): numbers are recycled and ported, so a check
by one resolves to the holders at the check time, a departed one blocking for its quarantine.
Kept compact, as a replica holds millions of subjects: see `SubjectState`, and `holdings` below.
The index also remembers the topic position it has applied (the proof returned with each
decision) and subjects whose messages could not be decoded (fail closed: they answer `stale`).
Only the feed (which folds events in) and the `SuppressionGate` (everything else) hold it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from samtykke.domain.consent_keys import ConsentKey as RecordKey
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.holdings import DAY, DEFAULT_QUARANTINE_DAYS, Holding, end, place, resolve
from samtykke.domain.model import SubjectId
from samtykke.domain.registers import REGISTER_COUNTRY, Register, RegisterBook, RegisterSnapshot
from samtykke.domain.suppression import (
    UNKNOWN,
    CheckPlan,
    ConsentKey,
    Reason,
    Scope,
    SubjectState,
    SuppressionRules,
    Verdict,
    suppressed_entries,
)

from .changes import LapseSchedule, SuppressionChanges

Entries = dict[ConsentKey, tuple[Reason, ...]]


class SuppressionIndex:
    def __init__(
        self, rules: SuppressionRules, registers: RegisterBook, quarantine_days: float = DEFAULT_QUARANTINE_DAYS
    ) -> None:
        self.rules = rules
        self.registers = registers
        self.quarantine = quarantine_days * DAY
        self.subjects: dict[SubjectId, SubjectState] = {}
        # keyed phone/e-mail hash -> who held it from when until when, oldest first. Nearly every
        # identifier has one holder who holds it still: that is stored as the holder's id alone (the
        # start is on the subject, `phone_since`/`email_since`); another lone holding as itself, not in
        # a 1-tuple. Read them through `holdings_of`.
        self.holdings: dict[str, SubjectId | Holding | tuple[Holding, ...]] = {}
        self.positions: dict[str, dict[int, int]] = {}  # topic -> partition -> next offset to apply
        self.tainted: set[SubjectId] = set()
        self.changes: SuppressionChanges | None = None  # recording starts once caught up
        # inside `batch`: the subjects touched so far, with their suppressions before the batch
        self._pending: dict[SubjectId, tuple[SubjectState, Scope | None, Entries]] | None = None
        self.lapses = LapseSchedule()
        self._fresh: dict[Register, bool] = {}
        self.register_flips: list[tuple[Register, float]] = []  # (register, when its freshness flipped)

    def __len__(self) -> int:
        return len(self.subjects)

    # -- folding events ---------------------------------------------------------------
    def track(self, topic: str, partition: int, next_offset: int) -> None:
        """Name a partition in the position before anything of it is applied."""
        self.positions.setdefault(topic, {})[partition] = next_offset

    def advance(self, topic: str, partition: int, offset: int) -> None:
        self.positions.setdefault(topic, {})[partition] = offset + 1

    def apply_consent(self, event: ConsentChanged, now: float) -> None:
        subject_id = SubjectId(event.subject_id)
        state = self.subjects.get(subject_id)
        if state is None:
            # the subject's own event may come later: its kind and country are on every change
            state = self.subjects[subject_id] = SubjectState(subject_id, event.subject_kind, event.country)
        scope = self._scope(state, event.purpose, event.channel)
        before = self._before(state, now, scope)
        valid_until = event.valid_until.timestamp() if event.valid_until is not None else None
        if self.rules.apply_consent(state, event.purpose, event.channel, event.status, event.version, valid_until):
            # a grant lapsed already is decided lapsed in the diff below: scheduling it would diff it again
            if valid_until is not None and event.status == "granted" and valid_until > now:
                self.lapses.add(state.subject_id, valid_until)
            self._record(state, before, now, scope)

    def remove_consent(self, key: RecordKey, now: float) -> None:
        """A tombstone: the consent leaves the index (a lapse scheduled for it finds nothing to do)."""
        state = self.subjects.get(SubjectId(key.subject_id))
        if state is None:
            return
        scope = self._scope(state, key.purpose, key.channel)
        before = self._before(state, now, scope)
        if self.rules.remove_consent(state, key.purpose, key.channel):
            self._record(state, before, now, scope)

    def apply_subject(self, event: SubjectChanged, now: float) -> None:
        subject_id = SubjectId(event.subject_id)
        state = self.subjects.get(subject_id)
        if state is None:
            state = self.subjects[subject_id] = SubjectState(subject_id, event.kind, event.country)
        before = self._before(state, now)
        state.kind, state.country = sys.intern(event.kind), sys.intern(event.country)
        # erasure is final: a replayed older snapshot of the subject must not undo it
        state.erased = state.erased or event.erased
        self._hold(state, event)
        self._record(state, before, now)

    def _hold(self, state: SubjectState, event: SubjectChanged) -> None:
        """Fold the subject's holdings in: the ended ones it lists, and the phone and e-mail it holds now."""
        subject_id, occurred = state.subject_id, event.occurred_at.timestamp()
        for ended in event.released:
            self._place(ended.hash, Holding(subject_id, ended.since.timestamp(), ended.until.timestamp()))
        for attribute, value, since in (
            ("phone", event.phone_hash, event.phone_since),
            ("email", event.email_hash, event.email_since),
        ):
            start = since.timestamp() if since is not None else 0.0  # before v2: held since the start
            if state.erased and value is not None:
                # a record from before v2 still names an erased subject's hashes: held until its erasure
                self._place(value, Holding(subject_id, start, occurred))
                value = None
            old = getattr(state, f"{attribute}_hash")
            if old is not None and old != value:
                self._keep(old, end(self.holdings_of(old), subject_id, occurred))
            # read before the subject says it holds `value` since `start`: a lone holding is read from there
            held = self.holdings_of(value) if value is not None else ()
            setattr(state, f"{attribute}_hash", value)
            setattr(state, f"{attribute}_since", start if value is not None else 0.0)
            if value is not None:
                self._keep(value, place(held, Holding(subject_id, start, None)))

    def _place(self, hashed: str, holding: Holding) -> None:
        self._keep(hashed, place(self.holdings_of(hashed), holding))

    def _keep(self, hashed: str, holdings: tuple[Holding, ...]) -> None:
        if len(holdings) != 1:
            self.holdings[hashed] = holdings
            return
        (only,) = holdings
        if only.until is None and only.since == self._held_since(only.subject_id, hashed):
            self.holdings[hashed] = only.subject_id  # `holdings_of` reads it back from the subject
        else:
            self.holdings[hashed] = only

    def _held_since(self, subject_id: SubjectId, hashed: str) -> float | None:
        """Since when the subject holds this phone or e-mail now, by its own record (None: it does not)."""
        state = self.subjects.get(subject_id)
        if state is None:
            return None
        if state.phone_hash == hashed:
            return state.phone_since
        return state.email_since if state.email_hash == hashed else None

    def holdings_of(self, hashed: str) -> tuple[Holding, ...]:
        held = self.holdings.get(hashed, ())
        if type(held) is str:
            since = self._held_since(held, hashed)
            if since is None:
                raise LookupError(f"{held} does not hold the identifier its holding names")  # a bug
            return (Holding(held, since, None),)
        return (held,) if isinstance(held, Holding) else held  # type: ignore[return-value]

    def current_holders(self, hashed: str) -> tuple[SubjectId, ...]:
        """The subjects holding this phone or e-mail now (a register listing it concerns them)."""
        return tuple(h.subject_id for h in self.holdings_of(hashed) if h.until is None)

    def taint(self, subject_id: SubjectId | None) -> None:
        """A message about this subject could not be read: never allow on what we may have missed."""
        if subject_id:
            self.tainted.add(subject_id)

    # -- registers ----------------------------------------------------------------------
    def install_register(self, snapshot: RegisterSnapshot, now: float) -> int:
        """Use a new register snapshot; returns how many indexed subjects it lists."""
        previous = self.registers.snapshots.get(snapshot.register)
        affected = set(snapshot.phone_hashes) | (set(previous.phone_hashes) if previous else set())
        ids = {s for h in affected for s in self.current_holders(h)}
        country = REGISTER_COUNTRY[snapshot.register].value
        was_fresh = self.registers.is_fresh(snapshot.register, now)
        if not was_fresh:
            ids |= {s.subject_id for s in self.subjects.values() if s.country == country}
        before = {s: self._entries(self.subjects[s], now) for s in ids}
        self.registers.install(snapshot)
        self._fresh[snapshot.register] = self.registers.is_fresh(snapshot.register, now)
        for subject_id, entries in before.items():
            self._record(self.subjects[subject_id], entries, now)
        return sum(1 for h in snapshot.phone_hashes if h in self.holdings)

    def swap_register(self, register: Register, snapshot: RegisterSnapshot | None, now: float) -> RegisterBook:
        """Use `snapshot` (None: none, so `stale`) at once, in O(1); returns the book as it was, from
        which the caller records the change feed's entries in slices (`register_apply`)."""
        before = self.registers.copy()
        if snapshot is None:
            self.registers.withdraw(register)
        else:
            self.registers.install(snapshot)
        self._fresh[register] = self.registers.is_fresh(register, now)
        return before

    # -- time passing -------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Record what time alone changed: grants that lapsed, registers that went stale."""
        if self.changes is None:
            return
        for lapsed_at, subject_id in self.lapses.pop_due(now):
            state = self.subjects.get(subject_id)
            if state is not None:
                self._record(state, self._entries(state, lapsed_at - 0.001), now)
        for register in REGISTER_COUNTRY:
            fresh = self.registers.is_fresh(register, now)
            if self._fresh.setdefault(register, fresh) != fresh:
                self._fresh[register] = fresh
                # every subject of the country changes: recorded in slices by the register feed, not here
                self.register_flips.append((register, now))

    def start_recording(self, now: float) -> SuppressionChanges:
        self.lapses.pop_due(now)  # lapses before now are already in the export
        self._fresh = {r: self.registers.is_fresh(r, now) for r in REGISTER_COUNTRY}
        self.changes = SuppressionChanges()
        return self.changes

    def _scope(self, state: SubjectState, purpose: str, channel: str | None) -> Scope | None:
        # a replay at start-up diffs nothing: no scope to work out per event
        return None if self.changes is None else self.rules.change_scope(state, purpose, channel)

    def _entries(self, state: SubjectState, at: float, scope: Scope | None = None) -> Entries:
        if self.changes is None:
            return {}  # replay at start-up: nothing to diff against
        entries: Entries = suppressed_entries(self.rules, state, at, self.registers, scope)
        return entries

    def _before(self, state: SubjectState, now: float, scope: Scope | None = None) -> Entries:
        """The subject's suppressions within `scope` before a change (`SuppressionRules.change_scope`):
        evaluating every pair twice per event was most of the gate's cost during a backlog. Inside
        `batch`, kept for the batch's end instead."""
        pending = self._pending
        if pending is None:
            return self._entries(state, now, scope)
        if self.changes is None:
            return {}
        held = pending.get(state.subject_id)
        if held is None:
            pending[state.subject_id] = (state, scope, self._entries(state, now, scope))
        elif held[1] is not None and (scope is None or not scope.within(held[1])):
            # widen: the pairs not in scope yet are still as they were before the batch
            seen, before = held[1], held[2]
            wider = None if scope is None else seen | scope
            before.update((k, v) for k, v in self._entries(state, now, wider).items() if not seen.covers(*k))
            pending[state.subject_id] = (state, wider, before)
        return {}

    def _record(self, state: SubjectState, before: Entries, now: float, scope: Scope | None = None) -> None:
        if self.changes is not None and self._pending is None:
            self.changes.record(state.subject_id, before, self._entries(state, now, scope), now)

    @contextmanager
    def batch(self, now: float) -> Iterator[None]:
        """Fold a fetch's events as one step of the change feed: each subject they touch is diffed once,
        before its first event and after its last, and its net change recorded at `now`. The two full
        evaluations of a subject's suppressions were most of the gate's cost during a backlog, paid per
        event. The caller folds synchronously inside: no check or other recording runs in between."""
        self._pending = {}
        try:
            yield
        finally:
            pending, self._pending = self._pending, None
            for state, scope, before in pending.values():
                self._record(state, before, now, scope)

    # -- decisions ------------------------------------------------------------------------
    def decide(self, subject_id: SubjectId, plan: CheckPlan, at: float) -> Verdict:
        return self._decide(subject_id, self.subjects.get(subject_id), plan, at)

    def _decide(self, subject_id: SubjectId, state: SubjectState | None, plan: CheckPlan, at: float) -> Verdict:
        verdict: Verdict = self.rules.decide_planned(state, plan, at, self.registers)
        if self.tainted and subject_id in self.tainted and verdict.allowed:
            # a message about the subject could not be read: we may have missed a refusal
            return Verdict(False, (Reason.STALE,), None, verdict.evidence)
        return verdict

    def decide_hash(self, hashed: str, plan: CheckPlan, at: float) -> tuple[Verdict, tuple[SubjectId, ...]]:
        """Whoever held the identifier at `at` answers: see `domain.holdings`."""
        held = self.holdings.get(hashed)
        if held is None:
            return UNKNOWN, ()
        if type(held) is str:
            # the common case on the send path: one subject holding it still; since before `at`?
            state = self.subjects[held]
            if (state.phone_since if state.phone_hash == hashed else state.email_since) > at:
                return UNKNOWN, ()
            return self._decide(held, state, plan, at), (held,)  # the state in hand: no second lookup
        return resolve(self.holdings_of(hashed), at, self.quarantine, lambda s: self.decide(s, plan, at), self._erased)

    def _erased(self, subject_id: SubjectId) -> bool:
        state = self.subjects.get(subject_id)
        return state is not None and state.erased

    def entries(self, state: SubjectState, at: float) -> Entries:
        entries: Entries = suppressed_entries(self.rules, state, at, self.registers)
        if state.subject_id in self.tainted:
            entries = {k: v if Reason.STALE in v else (*v, Reason.STALE) for k, v in entries.items()}
        return entries

    def position(self) -> dict[str, dict[str, int]]:
        return {t: {str(p): o for p, o in sorted(parts.items())} for t, parts in self.positions.items()}
