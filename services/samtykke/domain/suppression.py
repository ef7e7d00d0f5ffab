"""Suppression decisions: may this subject be contacted for this purpose, on this channel, now?

Pure rules over a subject's current state (folded from `ConsentChanged` / `SubjectChanged`)
and the national registers. Times are epoch seconds (floats): the index evaluates millions
of decisions per second and a datetime per check would dominate the cost.

Rules, in order (every blocking reason found is reported, not only the first):
- unknown subject → `unknown_subject`; erased subject → `erased`, for every purpose, service
  messages included (an erased person has no subscription left to serve);
- non-consent bases (`service_delivery`, `billing`, …) → allowed: marketing choices never block them;
- a general objection to direct marketing — `direct_marketing` withdrawn or revoked on every
  channel the catalog offers the subject's kind — blocks every marketing purpose on every
  channel (`objected`), until a newer grant on some channel lifts it;
- opt-in purposes need a grant for that purpose (and channel) whose valid-until is after the
  check time: else `no_consent`, `withdrawn` (withdrawn or revoked) or `expired`;
- opt-out purposes are allowed unless withdrawn or revoked for that channel (`objected`);
- a marketing send by phone or post to a subject of a register's country is blocked when the
  subject's phone is listed (`register:X`), or `stale` when the register snapshot is missing or
  past its freshness window — unless the subject holds an explicit grant in force for that
  channel (of the purpose checked, or of `direct_marketing`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from .catalog import Purpose, PurposeCatalog
from .consent import in_force
from .model import ConsentStatus, Mechanism, SubjectId, SubjectKind
from .registers import RegisterBook, RegisterEvidence, Standing, registers_covering

DIRECT_MARKETING = "direct_marketing"
_REFUSALS = frozenset({ConsentStatus.WITHDRAWN.value, ConsentStatus.REVOKED.value})


class Reason(StrEnum):
    NO_CONSENT = "no_consent"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    OBJECTED = "objected"
    REGISTER_NIX = "register:NIX"
    REGISTER_ROBINSON = "register:ROBINSON"
    REGISTER_RESERVASJON = "register:RESERVASJON"
    ERASED = "erased"
    RELEASED = "released"  # a check by phone or e-mail within a departed holder's time or quarantine
    UNKNOWN_SUBJECT = "unknown_subject"
    STALE = "stale"


REGISTER_REASON = {
    "NIX": Reason.REGISTER_NIX,
    "ROBINSON": Reason.REGISTER_ROBINSON,
    "RESERVASJON": Reason.REGISTER_RESERVASJON,
}


class HeldConsent(NamedTuple):
    """The latest change of one (purpose, channel) the index has seen."""

    status: str
    version: int
    valid_until: float | None


ConsentKey = tuple[str, str | None]


class SubjectState:
    """What the index knows about one subject. Mutable: the index folds events into it.

    Compact, since a replica keeps millions: the consents are one flat tuple of (status, version,
    valid_until) triples, not a dict of tuples, and which (purpose, channel) each triple is for is
    said by a layout shared by every subject with the same set of consents (`_layout`). Statuses
    are interned. `phone_since`/`email_since` are when the subject started to hold its current
    phone and e-mail: the index keeps a lone open holding as the subject id alone and reads the
    start here.
    """

    __slots__ = (
        "country",
        "email_hash",
        "email_since",
        "erased",
        "held",
        "kind",
        "objects_to_marketing",
        "phone_hash",
        "phone_since",
        "positions",
        "subject_id",
    )

    def __init__(
        self,
        subject_id: SubjectId,
        kind: str,
        country: str,
        erased: bool = False,
        phone_hash: str | None = None,
        email_hash: str | None = None,
        objects_to_marketing: bool = False,
        consents: Mapping[ConsentKey, HeldConsent] | None = None,
    ) -> None:
        self.subject_id = subject_id
        self.kind = sys.intern(kind)
        self.country = sys.intern(country)
        self.erased = erased
        self.objects_to_marketing = objects_to_marketing
        self.phone_hash = phone_hash
        self.email_hash = email_hash
        self.phone_since = self.email_since = 0.0
        # (purpose, channel) -> index of its status in `held`; shared (see `_layout`), so never changed in place
        self.positions: dict[ConsentKey, int] = _NO_CONSENTS
        self.held: tuple[Any, ...] = ()  # status, version, valid_until of each consent in turn
        if consents:
            self._store(consents)

    @property
    def consents(self) -> dict[ConsentKey, HeldConsent]:
        """A decoded copy, for reading: change consents through `set_consent` and `drop_consent`."""
        held = self.held
        return {key: HeldConsent(*held[at : at + 3]) for key, at in self.positions.items()}

    def consent(self, key: ConsentKey) -> HeldConsent | None:
        at = self.positions.get(key)
        return None if at is None else HeldConsent(*self.held[at : at + 3])

    def set_consent(self, key: ConsentKey, consent: HeldConsent) -> None:
        triple = (sys.intern(consent.status), consent.version, consent.valid_until)
        at = self.positions.get(key)
        if at is None:
            # a new key goes in at its place in `key_order`: those before it keep theirs
            self.positions = _layout(tuple(sorted((*self.positions, key), key=key_order)))
            at = self.positions[key]
            self.held = (*self.held[:at], *triple, *self.held[at:])
        else:
            self.held = (*self.held[:at], *triple, *self.held[at + 3 :])

    def drop_consent(self, key: ConsentKey) -> bool:
        consents = self.consents
        if consents.pop(key, None) is None:
            return False
        self._store(consents)
        return True

    def _store(self, consents: Mapping[ConsentKey, HeldConsent]) -> None:
        keys = tuple(sorted(consents, key=key_order))
        self.positions = _layout(keys)
        self.held = tuple(
            value
            for key in keys
            for value in (sys.intern(consents[key].status), consents[key].version, consents[key].valid_until)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubjectState):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _COMPARED)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _COMPARED)
        return f"SubjectState({fields})"


_COMPARED = (
    "subject_id",
    "kind",
    "country",
    "erased",
    "objects_to_marketing",
    "phone_hash",
    "email_hash",
    "consents",
)
_NO_CONSENTS: dict[ConsentKey, int] = {}
# every set of consents seen, in `key_order`, with where each one's status is in `held`: subjects
# share them, and there are as many as distinct sets of (purpose, channel), a few thousand at most
_LAYOUTS: dict[tuple[ConsentKey, ...], dict[ConsentKey, int]] = {(): _NO_CONSENTS}


def key_order(key: ConsentKey) -> tuple[str, str]:
    """(purpose, channel) in a stable order: no channel sorts first."""
    return key[0], key[1] or ""


def _layout(keys: tuple[ConsentKey, ...]) -> dict[ConsentKey, int]:
    layout = _LAYOUTS.get(keys)
    if layout is None:
        layout = _LAYOUTS[keys] = {key: 3 * n for n, key in enumerate(keys)}
    return layout


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reasons: tuple[Reason, ...]
    valid_until: float | None = None
    evidence: tuple[RegisterEvidence, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckPlan:
    purpose: Purpose
    channel: str | None
    key: ConsentKey
    opt_in: bool
    marketing: bool
    not_consent_based: bool
    direct_key: ConsentKey


UNKNOWN = Verdict(False, (Reason.UNKNOWN_SUBJECT,))
ERASED = Verdict(False, (Reason.ERASED,))
ALLOWED = Verdict(True, ())
# blocked verdicts without register evidence are values: shared, so bulk checks allocate nothing for them
_REFUSED: dict[tuple[Reason, ...], Verdict] = {}


class SuppressionRules:
    """The decision function with the catalog facts it needs, prepared once."""

    def __init__(self, catalog: PurposeCatalog) -> None:
        self.catalog = catalog
        direct = catalog.get(DIRECT_MARKETING)
        self._objection_channels: dict[str, tuple[str, ...]] = {
            kind.value: tuple(c.value for c in direct.channels.get(kind, ())) if direct else () for kind in SubjectKind
        }
        # every marketing (purpose, channel) a kind of subject has, planned once: the change feed
        # decides all of them twice for every event it applies
        self.marketing_plans: dict[str, tuple[CheckPlan, ...]] = {
            kind.value: tuple(
                self.plan(purpose, channel)
                for purpose in catalog.purposes.values()
                if purpose.marketing and purpose.applies_to(kind)
                for channel in (tuple(c.value for c in purpose.channels[kind]) if purpose.per_channel else (None,))
            )
            for kind in SubjectKind
        }

    def apply_consent(
        self,
        state: SubjectState,
        purpose: str,
        channel: str | None,
        status: str,
        version: int,
        valid_until: float | None,
    ) -> bool:
        """Fold one change in, guarded by version (duplicates and replays change nothing)."""
        key = (purpose, channel)
        held = state.consent(key)
        if held is not None and held.version >= version:
            return False
        state.set_consent(key, HeldConsent(status, version, valid_until))
        if purpose == DIRECT_MARKETING:
            state.objects_to_marketing = self._objects(state)
        return True

    def change_scope(self, state: SubjectState, purpose: str, channel: str | None) -> Scope | None:
        """The pairs a change of (purpose, channel) can alter, told before it is applied (None: every pair).

        A purpose's own pairs, but for direct marketing: its consent on a channel lifts register blocks of
        every purpose on that channel (`CheckPlan.direct_key`), so that channel's pairs; and when it could
        flip the objection to all marketing (every other objection channel is refused already), every
        pair. The change feed diffs a subject within this scope before and after a change: evaluating
        every pair twice for each direct-marketing change was half the gate's work during a backlog."""
        if purpose != DIRECT_MARKETING:
            return _purpose_scope(purpose)
        if channel is None or self._may_flip_objection(state, channel):
            return None
        return _channel_scope(channel)

    def _may_flip_objection(self, state: SubjectState, channel: str) -> bool:
        """Whether a change of direct marketing on `channel` could flip the objection to all marketing:
        the channel is one of the objection's, and every other one is refused already."""
        channels = self._objection_channels.get(state.kind, ())
        return channel in channels and all(
            other == channel or _refused(state.consent((DIRECT_MARKETING, other))) for other in channels
        )

    def remove_consent(self, state: SubjectState, purpose: str, channel: str | None) -> bool:
        """Forget one consent (its tombstone: documentation purged, or the subject erased, whose own
        record keeps it blocked). An opt-in purpose without a record is blocked (`no_consent`)."""
        if not state.drop_consent((purpose, channel)):
            return False
        if purpose == DIRECT_MARKETING:
            state.objects_to_marketing = self._objects(state)
        return True

    def _objects(self, state: SubjectState) -> bool:
        channels = self._objection_channels.get(state.kind, ())
        return bool(channels) and all(_refused(state.consent((DIRECT_MARKETING, c))) for c in channels)

    def plan(self, purpose: Purpose, channel: str | None) -> CheckPlan:
        """What a check of (purpose, channel) needs, worked out once per request, not per subject."""
        return CheckPlan(
            purpose=purpose,
            channel=channel,
            key=(purpose.code, channel if purpose.per_channel else None),
            opt_in=purpose.mechanism is Mechanism.OPT_IN,
            marketing=purpose.marketing,
            not_consent_based=purpose.mechanism is Mechanism.NONE,
            direct_key=(DIRECT_MARKETING, channel),
        )

    def decide(
        self, state: SubjectState | None, purpose: Purpose, channel: str | None, at: float, registers: RegisterBook
    ) -> Verdict:
        return self.decide_planned(state, self.plan(purpose, channel), at, registers)

    def decide_planned(
        self, state: SubjectState | None, plan: CheckPlan, at: float, registers: RegisterBook
    ) -> Verdict:
        if state is None:
            return UNKNOWN
        if state.erased:
            return ERASED
        if plan.not_consent_based:
            return ALLOWED
        # the consent's status and valid-until, read in place (see `SubjectState`)
        at_ = state.positions.get(plan.key)
        status, until = (None, None) if at_ is None else (state.held[at_], state.held[at_ + 2])
        # the lapse is evaluated here, at check time: no `expired` event is needed to block
        granted = status is not None and in_force(status, until, at)
        covering = registers_covering(state.country, plan.channel) if plan.marketing else ()
        if granted and not covering and not (plan.marketing and state.objects_to_marketing):
            return ALLOWED if until is None else Verdict(True, (), until)
        reasons: list[Reason] = []
        if plan.marketing and state.objects_to_marketing:
            reasons.append(Reason.OBJECTED)
        valid_until: float | None = until if granted else None
        if plan.opt_in:
            if not granted:
                reasons.append(_opt_in_refusal(status))
        elif status in _REFUSALS:
            reasons.append(Reason.OBJECTED)
        evidence: tuple[RegisterEvidence, ...] = ()
        if covering and not (granted or _held_in_force(state.consent(plan.direct_key), at)):
            evidence = tuple(registers.evidence(r, state.phone_hash, at) for r in covering)
            for item in evidence:
                if item.standing is Standing.LISTED:
                    reasons.append(REGISTER_REASON[item.register.value])
                elif item.standing is Standing.STALE:
                    reasons.append(Reason.STALE)
                elif item.fresh_until is not None:
                    valid_until = item.fresh_until if valid_until is None else min(valid_until, item.fresh_until)
        if reasons:
            key = tuple(dict.fromkeys(reasons))
            if not evidence:
                return _REFUSED.get(key) or _REFUSED.setdefault(key, Verdict(False, key))
            return Verdict(False, key, None, evidence)
        return Verdict(True, (), valid_until, evidence)


def _refused(held: HeldConsent | None) -> bool:
    return held is not None and held.status in _REFUSALS


def _held_in_force(held: HeldConsent | None, at: float) -> bool:
    # the lapse is evaluated here, at check time: no `expired` event is needed to block
    return held is not None and in_force(held.status, held.valid_until, at)


def _opt_in_refusal(status: str | None) -> Reason:
    if status is None:
        return Reason.NO_CONSENT
    if status in _REFUSALS:
        return Reason.WITHDRAWN
    return Reason.EXPIRED  # an `expired` change, or a grant past its valid-until


def combine(verdicts: list[Verdict]) -> Verdict:
    """One identifier held by several subjects: allowed only if every one of them allows it."""
    if not verdicts:
        return UNKNOWN
    if len(verdicts) == 1:
        return verdicts[0]
    if all(v.allowed for v in verdicts):
        untils = [v.valid_until for v in verdicts if v.valid_until is not None]
        return Verdict(True, (), min(untils) if untils else None, tuple(e for v in verdicts for e in v.evidence))
    reasons = dict.fromkeys(r for v in verdicts for r in v.reasons)
    return Verdict(False, tuple(reasons), None, tuple(e for v in verdicts for e in v.evidence))


@dataclass(frozen=True, slots=True)
class Scope:
    """The marketing (purpose, channel) pairs a change can alter: every pair of one of `purposes`, and
    every pair on one of `channels`. (None where a scope is expected: every pair.)"""

    purposes: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def covers(self, purpose: str, channel: str | None) -> bool:
        return purpose in self.purposes or channel in self.channels

    def within(self, other: Scope) -> bool:
        return self.purposes <= other.purposes and self.channels <= other.channels

    def __or__(self, other: Scope) -> Scope:
        return Scope(self.purposes | other.purposes, self.channels | other.channels)


@functools.cache
def _purpose_scope(purpose: str) -> Scope:
    return Scope(purposes=frozenset((purpose,)))


@functools.cache
def _channel_scope(channel: str) -> Scope:
    return Scope(channels=frozenset((channel,)))


def suppressed_entries(
    rules: SuppressionRules,
    state: SubjectState,
    at: float,
    registers: RegisterBook,
    scope: Scope | None = None,
) -> dict[ConsentKey, tuple[Reason, ...]]:
    """The subject's explicit suppressions: every marketing (purpose, channel) it blocks for a
    reason other than a mere absence of consent. This is what the export and change feed list.
    `scope`: only the pairs it covers (None: every pair)."""
    entries: dict[ConsentKey, tuple[Reason, ...]] = {}
    if not state.positions and state.phone_hash is None and not (state.erased or state.objects_to_marketing):
        return entries  # no consent, and no phone a register could list: nothing but `no_consent` anywhere
    for plan in rules.marketing_plans[state.kind]:
        if scope is not None and not scope.covers(plan.purpose.code, plan.channel):
            continue
        verdict = rules.decide_planned(state, plan, at, registers)
        if not verdict.allowed and verdict.reasons != (Reason.NO_CONSENT,):
            entries[(plan.purpose.code, plan.channel)] = verdict.reasons
    return entries
