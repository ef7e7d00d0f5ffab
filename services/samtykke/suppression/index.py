"""The in-memory suppression index: subjects folded from the topics, looked up by id or keyed hash.

Holds no clear identifier: phones and e-mails arrive (and are looked up) only as keyed hashes.
The index also remembers the topic position it has applied (the proof returned with each
decision) and subjects whose messages could not be decoded (fail closed: they answer `stale`).
Only the feed (which folds events in) and the `SuppressionGate` (everything else) hold it.
"""

from __future__ import annotations

from samtykke.domain.consent_keys import ConsentKey as RecordKey
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import SubjectId
from samtykke.domain.registers import REGISTER_COUNTRY, Register, RegisterBook, RegisterSnapshot
from samtykke.domain.suppression import (
    CheckPlan,
    ConsentKey,
    Reason,
    SubjectState,
    SuppressionRules,
    Verdict,
    combine,
    suppressed_entries,
)

from .changes import LapseSchedule, SuppressionChanges

Entries = dict[ConsentKey, tuple[Reason, ...]]


class SuppressionIndex:
    def __init__(self, rules: SuppressionRules, registers: RegisterBook) -> None:
        self.rules = rules
        self.registers = registers
        self.subjects: dict[SubjectId, SubjectState] = {}
        self.holders: dict[str, tuple[SubjectId, ...]] = {}  # keyed phone/e-mail hash -> subject ids
        self.positions: dict[str, dict[int, int]] = {}  # topic -> partition -> next offset to apply
        self.tainted: set[SubjectId] = set()
        self.changes: SuppressionChanges | None = None  # recording starts once caught up
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
        before = self._entries(state, now)
        valid_until = event.valid_until.timestamp() if event.valid_until is not None else None
        if self.rules.apply_consent(state, event.purpose, event.channel, event.status, event.version, valid_until):
            if valid_until is not None and event.status == "granted":
                self.lapses.add(state.subject_id, valid_until)
            self._record(state, before, now)

    def remove_consent(self, key: RecordKey, now: float) -> None:
        """A tombstone: the consent leaves the index (a lapse scheduled for it finds nothing to do)."""
        state = self.subjects.get(SubjectId(key.subject_id))
        if state is None:
            return
        before = self._entries(state, now)
        if self.rules.remove_consent(state, key.purpose, key.channel):
            self._record(state, before, now)

    def apply_subject(self, event: SubjectChanged, now: float) -> None:
        subject_id = SubjectId(event.subject_id)
        state = self.subjects.get(subject_id)
        if state is None:
            state = self.subjects[subject_id] = SubjectState(subject_id, event.kind, event.country)
        before = self._entries(state, now)
        state.kind, state.country = event.kind, event.country
        # erasure is final: a replayed older snapshot of the subject must not undo it
        state.erased = state.erased or event.erased
        for attribute, value in (("phone_hash", event.phone_hash), ("email_hash", event.email_hash)):
            old = getattr(state, attribute)
            if value == old or (value is None and state.erased):
                continue  # an erased subject keeps its hashes: it must stay suppressed
            if old is not None:
                self._unhold(old, state.subject_id)
            if value is not None:
                held = self.holders.get(value, ())
                if state.subject_id not in held:
                    self.holders[value] = (*held, state.subject_id)
            setattr(state, attribute, value)
        self._record(state, before, now)

    def taint(self, subject_id: SubjectId | None) -> None:
        """A message about this subject could not be read: never allow on what we may have missed."""
        if subject_id:
            self.tainted.add(subject_id)

    def _unhold(self, hashed: str, subject_id: SubjectId) -> None:
        rest = tuple(s for s in self.holders.get(hashed, ()) if s != subject_id)
        if rest:
            self.holders[hashed] = rest
        else:
            self.holders.pop(hashed, None)

    # -- registers ----------------------------------------------------------------------
    def install_register(self, snapshot: RegisterSnapshot, now: float) -> int:
        """Use a new register snapshot; returns how many indexed subjects it lists."""
        previous = self.registers.snapshots.get(snapshot.register)
        affected = set(snapshot.phone_hashes) | (set(previous.phone_hashes) if previous else set())
        ids = {s for h in affected for s in self.holders.get(h, ())}
        country = REGISTER_COUNTRY[snapshot.register].value
        was_fresh = self.registers.is_fresh(snapshot.register, now)
        if not was_fresh:
            ids |= {s.subject_id for s in self.subjects.values() if s.country == country}
        before = {s: self._entries(self.subjects[s], now) for s in ids}
        self.registers.install(snapshot)
        self._fresh[snapshot.register] = self.registers.is_fresh(snapshot.register, now)
        for subject_id, entries in before.items():
            self._record(self.subjects[subject_id], entries, now)
        return sum(1 for h in snapshot.phone_hashes if h in self.holders)

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

    def _entries(self, state: SubjectState, at: float) -> Entries:
        if self.changes is None:
            return {}  # replay at start-up: nothing to diff against
        entries: Entries = suppressed_entries(self.rules, state, at, self.registers)
        return entries

    def _record(self, state: SubjectState, before: Entries, now: float) -> None:
        if self.changes is not None:
            self.changes.record(state.subject_id, before, self._entries(state, now), now)

    # -- decisions ------------------------------------------------------------------------
    def decide(self, subject_id: SubjectId, plan: CheckPlan, at: float) -> Verdict:
        verdict: Verdict = self.rules.decide_planned(self.subjects.get(subject_id), plan, at, self.registers)
        if self.tainted and subject_id in self.tainted and verdict.allowed:
            return Verdict(False, (Reason.STALE,), None, verdict.evidence)
        return verdict

    def decide_hash(self, hashed: str, plan: CheckPlan, at: float) -> tuple[Verdict, tuple[SubjectId, ...]]:
        holders = self.holders.get(hashed, ())
        return combine([self.decide(s, plan, at) for s in holders]), holders

    def entries(self, state: SubjectState, at: float) -> Entries:
        entries: Entries = suppressed_entries(self.rules, state, at, self.registers)
        if state.subject_id in self.tainted:
            entries = {k: v if Reason.STALE in v else (*v, Reason.STALE) for k, v in entries.items()}
        return entries

    def position(self) -> dict[str, dict[str, int]]:
        return {t: {str(p): o for p, o in sorted(parts.items())} for t, parts in self.positions.items()}
