"""Bulk import, one batch: the subjects and the changes it plans are what the API records for the same
decisions (the API run on the memory store), and the stored state decides as the API's rules do."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from samtykke.adapters.vault import IdentifierVault
from samtykke.consent.imports import ImportRow, Rejection, RowValidator
from samtykke.consent.imports_batch import BatchPlan, SubjectResolver, plan_decisions, plan_subjects, ref_digest
from samtykke.consent.memory import MemoryConsentStore
from samtykke.consent.metrics import ConsentMetrics
from samtykke.consent.ports import OUTBOX_CONSENT, OUTBOX_SUBJECT, SubjectRow
from samtykke.consent.service import ConsentService, DecisionBatch, NewSubject
from samtykke.domain.catalog import load_catalog
from samtykke.domain.consent import ConsentRecord, Decision
from samtykke.domain.identifiers import IdentifierHasher
from samtykke.domain.model import (
    ActorKind,
    Channel,
    ConsentAction,
    ConsentStatus,
    Country,
    PurposeCode,
    Source,
    SubjectKind,
)

CATALOG = load_catalog()
KEY = b"unit-test-identifier-key"
VAULT = IdentifierVault("ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
SUBJECT = {"subject_ref": "CRM-7", "kind": "consumer", "country": "DK", "phone": "+4512345678"}


def row(number: int, **cells: Any) -> ImportRow:
    values = SUBJECT | {"purpose": "direct_marketing", "channel": "sms", "status": "granted"} | cells
    values["occurred_at"] = values.get("occurred_at", T0).isoformat()
    checked = RowValidator(CATALOG, NOW).validate(number, values)
    assert isinstance(checked, ImportRow), checked
    return checked


def resolver() -> SubjectResolver:
    found = SubjectResolver(IdentifierHasher(KEY), VAULT.seal)
    found.now = NOW
    return found


def plan(
    rows: list[ImportRow],
    known: dict[str, SubjectRow] | None = None,
    current: dict[Any, ConsentRecord] | None = None,
    present: set[str] | None = None,
    taken: set[str] | None = None,
) -> BatchPlan:
    batch = BatchPlan()
    placed = plan_subjects(rows, dict(known or {}), set(taken or ()), resolver(), batch)
    plan_decisions(placed, dict(current or {}), set(present or ()), CATALOG, NOW, "import:job", batch)
    return batch


async def test_the_subject_and_changes_are_what_the_api_records_for_the_same_decisions() -> None:
    decisions = [(T0, ConsentAction.GRANT), (T0 + timedelta(days=40), ConsentAction.WITHDRAW)]
    rows = [
        row(2, occurred_at=at, status={"grant": "granted", "withdraw": "withdrawn"}[a], notice_version="n-1")
        for at, a in decisions
    ]
    imported = plan(rows)

    store = MemoryConsentStore(clock=lambda: NOW)
    api = ConsentService(store, CATALOG, VAULT, KEY, "changes", "subjects", ConsentMetrics(CollectorRegistry()))
    subject = await api.register_subject(NewSubject(SubjectKind.CONSUMER, Country.DK, None, "12345678", None, None))
    for at, action in decisions:
        decision = Decision("direct_marketing", Channel.SMS, action, at)
        batch = DecisionBatch([decision], Source.IMPORT, ActorKind.SYSTEM, None, "n-1", None, None)
        await api.record(subject.subject_id, batch, None)
    outbox = await store.pending_outbox(100)

    [created] = imported.new_subjects
    assert (created.phone_hash, created.kind, created.country) == (subject.phone_hash, subject.kind, subject.country)
    assert VAULT.open(created.phone_enc) == "+4512345678"
    ours = [imported.subject_events[0].as_record()] + [c.as_record() for c in imported.changes]
    theirs = [m.payload for m in outbox]
    assert [m.schema_name for m in outbox] == [OUTBOX_SUBJECT, OUTBOX_CONSENT, OUTBOX_CONSENT]
    ignored = {"event_id", "subject_id", "correlation_id", "recorded_at", "occurred_at"}
    for mine, api_record in zip(ours, theirs, strict=True):
        assert mine is not None and api_record is not None
        assert {k: v for k, v in mine.items() if k not in ignored} == {
            k: v for k, v in api_record.items() if k not in ignored
        }
    assert [c["occurred_at"] for c in ours[1:]] == [c["occurred_at"] for c in theirs[1:] if c]


def test_a_consents_decisions_apply_in_the_order_they_occurred_whatever_the_rows_order() -> None:
    late, early = row(2, status="withdrawn", occurred_at=T0 + timedelta(days=9)), row(3, occurred_at=T0)
    changes = plan([late, early]).changes
    assert [(c.status, c.version, c.previous_status) for c in changes] == [
        ("granted", 1, None),
        ("withdrawn", 2, "granted"),
    ]
    assert changes[0].valid_until == T0 + timedelta(days=365) and changes[1].valid_until is None


def test_the_stored_state_decides_older_equal_and_present_rows() -> None:
    first = plan([row(2)])
    subject = first.new_subjects[0]
    known = {ref_digest(IdentifierHasher(KEY), "CRM-7"): subject}
    stored = ConsentRecord(PurposeCode("direct_marketing"), Channel.SMS, ConsentStatus.GRANTED, 3, T0, None)
    current = {(subject.subject_id, "direct_marketing", "sms"): stored}
    older = row(3, status="withdrawn", occurred_at=T0 - timedelta(days=1))
    newer = row(4, status="withdrawn", occurred_at=T0 + timedelta(days=1))
    present = row(5, purpose="product_development", channel=None)
    batch = plan([row(2), older, newer, present, newer], known, current, {present.event_id})
    assert batch.new_subjects == [] and batch.skipped == 3  # the same as the stored one, present, twice in the file
    assert batch.rejections == [Rejection(3, "occurred_at", "is older than the decision already recorded")]
    assert [(c.event_id, c.version, c.previous_status) for c in batch.changes] == [(newer.event_id, 4, "granted")]


def test_a_row_that_contradicts_its_subject_is_rejected() -> None:
    subject = plan([row(2)]).new_subjects[0]
    known = {ref_digest(IdentifierHasher(KEY), "CRM-7"): subject}
    erased = {ref_digest(IdentifierHasher(KEY), "CRM-7"): replace(subject, erased_at=NOW)}
    assert plan([row(3, country="SE", phone=None)], known).rejections == [
        Rejection(3, "country", "differs from the country recorded for this subject_ref")
    ]
    assert plan([row(4, phone="+4587654321")], known).rejections == [
        Rejection(4, "phone", "differs from the phone recorded for this subject_ref")
    ]
    assert plan([row(5, phone=None)], known).rejections == []  # a blank identifier never contradicts
    assert plan([row(6)], erased).rejections == [
        Rejection(6, "subject_ref", "the subject is erased; no consent can be recorded")
    ]


def test_a_national_id_held_by_another_subject_is_a_conflict() -> None:
    cpr = {"national_id": "0101901234"}
    first = plan([row(2, **cpr)])
    taken = {first.new_subjects[0].national_id_hash or ""}
    again = plan([row(3, subject_ref="CRM-8", **cpr)], taken=taken)
    assert again.rejections == [Rejection(3, "national_id", "already registered to another subject")]
    twice = plan([row(2, **cpr), row(3, subject_ref="CRM-8", **cpr)])
    assert len(twice.new_subjects) == 1 and [r.row for r in twice.rejections] == [3]
