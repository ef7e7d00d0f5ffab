"""Bulk import, one batch: which subjects to create, which rows are already in the ledger, which
decisions to record, and the rows the stored state rejects. Pure: the store reads the state, this
decides, the store writes the plan in the batch's transaction.

The rules are the API's. A subject is created by its first row (its kind, country, account and
identifiers); a later row must agree with what is recorded. A national id held by another subject is
a conflict; an erased subject takes no decision. Each consent's decisions are applied in the order
they occurred (then by row): a decision older than the one recorded is refused (`check_decision`),
and one equal to it (same status, same instant) is already present, as is any event id in the ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent import ConsentRecord, apply_decision, check_decision
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.identifiers import IdentifierHasher
from samtykke.domain.model import ACTION_STATUS, Country, PurposeCode

from .changes import DecisionBatch, consent_changed, subject_changed
from .imports import ImportRow, Rejection
from .ports import IdentifierKind, SubjectRow

ConsentKey = tuple[str, str, str | None]  # subject id, purpose, channel
Seal = Callable[[str | None], bytes | None]


def identifier_digest(hasher: IdentifierHasher, kind: IdentifierKind, normalised: str, country: Country) -> str:
    """The keyed hash the API stores (`ConsentService._digest`): a national id is keyed with its country."""
    return hasher(f"national_id:{country}" if kind is IdentifierKind.NATIONAL_ID else kind, normalised)


def ref_digest(hasher: IdentifierHasher, subject_ref: str) -> str:
    """The operator's reference is kept as a keyed hash: it finds the subject, it shows no CRM id."""
    return hasher("subject_ref", subject_ref)


@dataclass(slots=True)
class BatchPlan:
    new_subjects: list[SubjectRow] = field(default_factory=list)
    new_refs: list[tuple[str, str]] = field(default_factory=list)  # (ref digest, subject id)
    subject_events: list[SubjectChanged] = field(default_factory=list)
    changes: list[ConsentChanged] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skipped: int = 0

    @property
    def rejected_rows(self) -> int:
        return len({r.row for r in self.rejections})


class SubjectResolver:
    """Each row's subject: the one recorded for its reference, or a new one made from its first row."""

    def __init__(self, hasher: IdentifierHasher, seal: Seal) -> None:
        self.hasher, self._seal = hasher, seal
        self._now: datetime | None = None
        # a subject's rows repeat its identifiers: each is hashed once a batch
        self._digests: dict[tuple[str, tuple[tuple[IdentifierKind, str], ...]], dict[IdentifierKind, str]] = {}

    @property
    def now(self) -> datetime | None:
        """The batch's instant: a subject it creates is created then."""
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        self._now = value
        self._digests.clear()

    def digests(self, row: ImportRow) -> dict[IdentifierKind, str]:
        if not row.identifiers:
            return {}
        key = (row.country, tuple(row.identifiers.items()))
        found = self._digests.get(key)
        if found is None:
            found = self._digests[key] = {
                k: identifier_digest(self.hasher, k, v, row.country) for k, v in row.identifiers.items()
            }
        return found

    def national_id_digest(self, row: ImportRow) -> str | None:
        return self.digests(row).get(IdentifierKind.NATIONAL_ID) if row.identifiers else None

    def create(self, row: ImportRow, digests: dict[IdentifierKind, str]) -> SubjectRow:
        assert self.now is not None, "set the batch's instant first"
        clear = row.identifiers
        return SubjectRow(
            subject_id=str(uuid.uuid4()),
            kind=row.kind,
            country=row.country.value,
            account_id=row.account_id,
            phone_hash=digests.get(IdentifierKind.PHONE),
            email_hash=digests.get(IdentifierKind.EMAIL),
            national_id_hash=digests.get(IdentifierKind.NATIONAL_ID),
            phone_enc=self._seal(clear.get(IdentifierKind.PHONE)),
            email_enc=self._seal(clear.get(IdentifierKind.EMAIL)),
            national_id_enc=self._seal(clear.get(IdentifierKind.NATIONAL_ID)),
            version=1,
            created_at=self.now,
            updated_at=self.now,
            erased_at=None,
        )

    @staticmethod
    def disagreement(row: ImportRow, digests: dict[IdentifierKind, str], subject: SubjectRow) -> Rejection | None:
        """The first attribute of `row` that contradicts the recorded subject (a blank one never does)."""
        for name, given, held in (
            ("kind", row.kind.value, subject.kind.value),
            ("country", row.country.value, subject.country),
        ):
            if given != held:
                return Rejection(row.row, name, f"differs from the {name} recorded for this subject_ref")
        if row.account_id is not None and row.account_id != subject.account_id:
            return Rejection(row.row, "account_id", "differs from the account recorded for this subject_ref")
        for kind, digest in digests.items():
            if digest != subject.digest(kind):
                return Rejection(row.row, kind.value, f"differs from the {kind.value} recorded for this subject_ref")
        if subject.erased_at is not None:
            return Rejection(row.row, "subject_ref", "the subject is erased; no consent can be recorded")
        return None


def plan_subjects(
    rows: Sequence[ImportRow],
    known: dict[str, SubjectRow],
    national_ids_taken: set[str],
    resolver: SubjectResolver,
    plan: BatchPlan,
) -> list[tuple[ImportRow, SubjectRow]]:
    """Rows with their subject; `known` (ref digest -> subject) gains the subjects created."""
    placed: list[tuple[ImportRow, SubjectRow]] = []
    for row in rows:
        ref = ref_digest(resolver.hasher, row.subject_ref)
        digests = resolver.digests(row)
        subject = known.get(ref)
        if subject is None:
            national_id = digests.get(IdentifierKind.NATIONAL_ID)
            if national_id is not None and national_id in national_ids_taken:
                plan.rejections.append(Rejection(row.row, "national_id", "already registered to another subject"))
                continue
            subject = known[ref] = resolver.create(row, digests)
            if national_id is not None:
                national_ids_taken.add(national_id)
            plan.new_subjects.append(subject)
            plan.new_refs.append((ref, subject.subject_id))
            plan.subject_events.append(subject_changed(subject, subject.created_at))
        elif (broken := resolver.disagreement(row, digests, subject)) is not None:
            plan.rejections.append(broken)
            continue
        placed.append((row, subject))
    return placed


def plan_decisions(
    placed: Sequence[tuple[ImportRow, SubjectRow]],
    current: dict[ConsentKey, ConsentRecord],
    present: set[str],
    catalog: PurposeCatalog,
    now: datetime,
    job: str,
    plan: BatchPlan,
) -> None:
    """The changes to record, per consent in the order the decisions occurred; `current` advances."""
    ordered = sorted(placed, key=lambda p: (p[1].subject_id, *_sortable(p[0]), p[0].decision.occurred_at, p[0].row))
    for row, subject in ordered:
        if row.event_id in present:
            plan.skipped += 1
            continue
        key = (subject.subject_id, *row.key)
        before = current.get(key)
        decision = row.decision
        if before is not None and _same(before, row):
            plan.skipped += 1
            continue
        # without a recorded state every rule was checked with the row; with one, the order is checked too
        broken = (
            [] if before is None else check_decision(catalog, subject.kind, row.actor_kind, decision, "", now, before)
        )
        if broken:
            plan.rejections += [Rejection(row.row, v.field.lstrip("."), v.rule) for v in broken]
            continue
        after = current[key] = apply_decision(catalog.purposes[PurposeCode(decision.purpose)], before, decision)
        notes = DecisionBatch([decision], row.source, row.actor_kind, None, row.notice_version, row.evidence_ref, job)
        change = consent_changed(subject, after, before, now, row.source, row.actor_kind, notes, event_id=row.event_id)
        plan.changes.append(change)
        present.add(row.event_id)


def _sortable(row: ImportRow) -> tuple[str, str]:
    purpose, channel = row.key
    return purpose, channel or ""


def _same(before: ConsentRecord, row: ImportRow) -> bool:
    return before.occurred_at == row.decision.occurred_at and before.status is ACTION_STATUS[row.decision.action]
