"""One contract for every consent store: PostgreSQL (a fresh database per test) and memory.

The use cases and the sweeper are written against the port, so whatever they may rely on is
asserted here, against both adapters alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from samtykke.adapters.postgres import create_pool
from samtykke.consent.memory import MemoryConsentStore
from samtykke.consent.ports import (
    OUTBOX_CONSENT,
    OUTBOX_SUBJECT,
    AlreadyStored,
    ConsentStore,
    CurrentConsent,
    EndedHolding,
    IdentifierKind,
    StoredResponse,
    SubjectRow,
)
from samtykke.consent.store import PostgresConsentStore, create_schema
from samtykke.domain.consent_keys import consent_key
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import ActorKind, Channel, ConsentStatus, PurposeCode, Source, SubjectKind

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CHANGES, SUBJECTS = "t.consent.changes", "t.consent.subjects"


@pytest.fixture
def memory_store() -> MemoryConsentStore:
    return MemoryConsentStore()


@pytest.fixture
async def postgres_store(fresh_database: str) -> AsyncIterator[PostgresConsentStore]:
    pool = await create_pool(fresh_database, min_size=1, max_size=4)
    try:
        await create_schema(pool)
        yield PostgresConsentStore(pool)
    finally:
        await pool.close()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.stack)])
def store(request: pytest.FixtureRequest) -> ConsentStore:
    chosen: ConsentStore = request.getfixturevalue(f"{request.param}_store")
    return chosen


def subject_row(
    *, phone: str | None = None, email: str | None = None, national_id: str | None = None, created: datetime = T0
) -> SubjectRow:
    return SubjectRow(
        subject_id=str(uuid4()),
        kind=SubjectKind.CONSUMER,
        country="DK",
        account_id=None,
        phone_hash=phone,
        email_hash=email,
        national_id_hash=national_id,
        phone_enc=b"sealed phone" if phone else None,
        email_enc=b"sealed email" if email else None,
        national_id_enc=b"sealed id" if national_id else None,
        version=1,
        created_at=created,
        updated_at=created,
        erased_at=None,
    )


def change(
    subject: SubjectRow,
    purpose: str,
    channel: str | None,
    status: ConsentStatus,
    version: int,
    occurred_at: datetime = T0,
    valid_until: datetime | None = None,
    previous: ConsentStatus | None = None,
) -> ConsentChanged:
    return ConsentChanged(
        event_id=str(uuid4()),
        subject_id=subject.subject_id,
        subject_kind=subject.kind.value,
        account_id=None,
        country=subject.country,
        purpose=purpose,
        channel=channel,
        status=status.value,
        previous_status=previous.value if previous else None,
        version=version,
        occurred_at=occurred_at,
        recorded_at=occurred_at + timedelta(seconds=1),
        valid_until=valid_until,
        source=Source.SELF_SERVICE.value,
        actor_kind=ActorKind.AGENT.value,
        notice_version="dm-2025-01",
        evidence_ref="web-session-4711",
        correlation_id="req-1",
    )


async def registered(store: ConsentStore, *rows: SubjectRow) -> None:
    async with store.transaction() as uow:
        for row in rows:
            await uow.insert_subject(row)


async def saved(store: ConsentStore, *changes: ConsentChanged, actor_ref: str | None = "agent-17") -> None:
    async with store.transaction() as uow:
        await uow.save_changes(list(changes), actor_ref, CHANGES)


# -- subjects ---------------------------------------------------------------------------------------------


async def test_a_subject_is_stored_and_read_back(store: ConsentStore) -> None:
    row = subject_row(phone="p1", email="e1", national_id="n1")
    async with store.transaction() as uow:
        await uow.insert_subject(row)
        assert await uow.subject(row.subject_id) == row
        assert await store.subject(row.subject_id) is None  # not committed yet: invisible outside
    assert await store.subject(row.subject_id) == row
    async with store.transaction() as uow:
        assert (await uow.lock_subject_at(row.subject_id))[0] == row
        assert (await uow.lock_subject_at(str(uuid4())))[0] is None
    assert await store.subject(str(uuid4())) is None


async def test_a_national_id_belongs_to_one_subject(store: ConsentStore) -> None:
    first, second = subject_row(national_id="n1"), subject_row(national_id="n1", phone="p2")
    await registered(store, first, subject_row(), subject_row())  # subjects without one do not collide
    with pytest.raises(AlreadyStored):
        await registered(store, second)
    assert await store.subject(second.subject_id) is None
    assert await store.subject_by_national_id("n1") == first.subject_id
    assert await store.subject_by_national_id("n2") is None


async def test_subjects_are_found_by_the_kind_of_identifier(store: ConsentStore) -> None:
    older = subject_row(phone="p1", email="shared", created=T0)
    newer = subject_row(phone="p1", national_id="n1", created=T0 + timedelta(days=1))  # a recycled number
    other = subject_row(phone="shared", email="e2")
    await registered(store, newer, older, other)
    assert await store.find_subjects(IdentifierKind.PHONE, "p1") == [older.subject_id, newer.subject_id]
    assert await store.find_subjects(IdentifierKind.EMAIL, "shared") == [older.subject_id]
    assert await store.find_subjects(IdentifierKind.PHONE, "shared") == [other.subject_id]
    assert await store.find_subjects(IdentifierKind.NATIONAL_ID, "n1") == [newer.subject_id]
    assert await store.find_subjects(IdentifierKind.EMAIL, "p1") == []


async def test_erasure_drops_clear_identifiers_evidence_and_responses_but_keeps_hashes(store: ConsentStore) -> None:
    row, bystander = subject_row(phone="p1", email="e1", national_id="n1"), subject_row(phone="p2")
    await registered(store, row, bystander)
    await saved(store, change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, 1))
    await saved(store, change(bystander, "direct_marketing", "sms", ConsentStatus.GRANTED, 1))
    async with store.transaction() as uow:
        await uow.remember_response("key-row-0001", StoredResponse(row.subject_id, "h", {"changes": []}))
        await uow.remember_response("key-other-01", StoredResponse(bystander.subject_id, "h", {"changes": []}))
    at = T0 + timedelta(days=3)

    async with store.transaction() as uow:
        erased = await uow.erase_subject(row.subject_id, at)
    assert erased == await store.subject(row.subject_id)
    assert (erased.phone_enc, erased.email_enc, erased.national_id_enc) == (None, None, None)
    assert (erased.phone_hash, erased.email_hash, erased.national_id_hash) == ("p1", "e1", "n1")
    assert (erased.erased_at, erased.updated_at, erased.version) == (at, at, 2)
    [entry] = await store.ledger(row.subject_id)
    assert (entry.evidence_ref, entry.actor_ref) == (None, None)
    assert (entry.status, entry.notice_version) == (ConsentStatus.GRANTED, "dm-2025-01")  # the rest is kept
    assert await store.find_subjects(IdentifierKind.PHONE, "p1") == [row.subject_id]  # so still suppressible
    [kept] = await store.ledger(bystander.subject_id)
    assert (kept.evidence_ref, kept.actor_ref) == ("web-session-4711", "agent-17")
    async with store.transaction() as uow:
        assert await uow.stored_response("key-row-0001") is None
        assert await uow.stored_response("key-other-01") is not None


async def test_erasure_ends_the_hold_on_phone_and_email_and_keeps_the_hashes(store: ConsentStore) -> None:
    row, bystander = subject_row(phone="p1", email="e1", national_id="n1"), subject_row(phone="p2")
    await registered(store, row, bystander)
    assert await store.ended_holdings(row.subject_id) == []
    at = T0 + timedelta(days=3)
    async with store.transaction() as uow:
        await uow.erase_subject(row.subject_id, at)
        assert len(await uow.ended_holdings(row.subject_id)) == 2  # visible inside the unit of work
    assert await store.ended_holdings(row.subject_id) == [
        EndedHolding(row.subject_id, IdentifierKind.EMAIL, "e1", T0, at, "erased"),
        EndedHolding(row.subject_id, IdentifierKind.PHONE, "p1", T0, at, "erased"),
    ]
    assert await store.ended_holdings(bystander.subject_id) == []


async def test_a_released_identifier_leaves_the_subject_and_is_recorded_as_ended(store: ConsentStore) -> None:
    row = subject_row(phone="p1", email="e1", national_id="n1")
    await registered(store, row)
    ported, ended = T0 + timedelta(days=10), T0 + timedelta(days=20)

    async with store.transaction() as uow:
        released = await uow.release_identifiers(row.subject_id, [IdentifierKind.PHONE], "ported_out", ported)
    assert released == await store.subject(row.subject_id)
    assert (released.phone_hash, released.phone_enc) == (None, None)
    assert (released.email_hash, released.email_enc, released.national_id_hash) == ("e1", b"sealed email", "n1")
    assert (released.version, released.updated_at, released.erased_at) == (2, ported, None)
    assert await store.find_subjects(IdentifierKind.PHONE, "p1") == []
    async with store.transaction() as uow:
        again = await uow.release_identifiers(row.subject_id, [IdentifierKind.PHONE, IdentifierKind.EMAIL], None, ended)
    assert (again.phone_hash, again.email_hash, again.version) == (None, None, 3)
    assert await store.ended_holdings(row.subject_id) == [
        EndedHolding(row.subject_id, IdentifierKind.PHONE, "p1", T0, ported, "ported_out"),
        EndedHolding(row.subject_id, IdentifierKind.EMAIL, "e1", T0, ended, None),
    ]


async def test_a_rolled_back_release_leaves_no_trace(store: ConsentStore) -> None:
    row = subject_row(phone="p1")
    await registered(store, row)
    with pytest.raises(RuntimeError):
        async with store.transaction() as uow:
            await uow.release_identifiers(row.subject_id, [IdentifierKind.PHONE], "subscription_ended", T0)
            raise RuntimeError("the request failed after the release")
    assert (await store.subject(row.subject_id)) == row
    assert await store.ended_holdings(row.subject_id) == []


# -- changes and the outbox --------------------------------------------------------------------------------


async def test_saved_changes_append_the_ledger_keep_the_latest_state_and_enqueue_in_order(
    store: ConsentStore,
) -> None:
    row = subject_row()
    await registered(store, row)
    later = T0 + timedelta(hours=1)
    batch = [
        change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, 1, valid_until=T0 + timedelta(days=365)),
        change(row, "personalised_offers", None, ConsentStatus.GRANTED, 1),
        change(row, "direct_marketing", "sms", ConsentStatus.WITHDRAWN, 2, later, previous=ConsentStatus.GRANTED),
        change(row, "direct_marketing", "email", ConsentStatus.GRANTED, 1),
    ]
    await saved(store, *batch)

    ledger = await store.ledger(row.subject_id)
    assert [e.event_id for e in ledger] == [c.event_id for c in batch]
    assert [e.seq for e in ledger] == sorted({e.seq for e in ledger})
    first, third = ledger[0], ledger[2]
    assert (first.purpose, first.channel, first.status, first.previous_status) == (
        "direct_marketing",
        Channel.SMS,
        ConsentStatus.GRANTED,
        None,
    )
    assert first.valid_until == T0 + timedelta(days=365) and first.recorded_at == T0 + timedelta(seconds=1)
    assert (first.source, first.actor_kind, first.actor_ref) == (Source.SELF_SERVICE, ActorKind.AGENT, "agent-17")
    assert (first.notice_version, first.evidence_ref, first.correlation_id) == (
        "dm-2025-01",
        "web-session-4711",
        "req-1",
    )
    assert (third.previous_status, third.version, third.occurred_at) == (ConsentStatus.GRANTED, 2, later)
    assert ledger[1].channel is None

    current = await store.consents(row.subject_id)
    assert [(c.record.purpose, c.record.channel, c.record.status, c.record.version) for c in current] == [
        ("direct_marketing", Channel.EMAIL, ConsentStatus.GRANTED, 1),
        ("direct_marketing", Channel.SMS, ConsentStatus.WITHDRAWN, 2),
        ("personalised_offers", None, ConsentStatus.GRANTED, 1),
    ]
    withdrawn = current[1]
    assert withdrawn == CurrentConsent(
        row.subject_id, third.record, later + timedelta(seconds=1), "dm-2025-01", Source.SELF_SERVICE
    )

    outbox = await store.pending_outbox(100)
    assert [(m.topic, m.key, m.schema_name, m.payload) for m in outbox] == [
        (CHANGES, consent_key(row.subject_id, c.purpose, c.channel), OUTBOX_CONSENT, c.as_record()) for c in batch
    ]
    assert [m.id for m in outbox] == sorted({m.id for m in outbox})

    regrant = change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, 3, later + timedelta(hours=1))
    await saved(store, regrant)
    assert [c.record.version for c in await store.consents(row.subject_id)] == [1, 3, 1]
    assert len(await store.ledger(row.subject_id)) == 5


async def test_subject_events_are_enqueued_after_what_came_before(store: ConsentStore) -> None:
    row = subject_row()
    event = SubjectChanged(str(uuid4()), row.subject_id, "consumer", "DK", None, "p1", None, None, False, 1, T0)
    async with store.transaction() as uow:
        await uow.insert_subject(row)
        await uow.save_changes([change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, 1)], None, CHANGES)
        await uow.enqueue_subject(SUBJECTS, event)
    outbox = await store.pending_outbox(100)
    assert [(m.topic, m.schema_name) for m in outbox] == [(CHANGES, OUTBOX_CONSENT), (SUBJECTS, OUTBOX_SUBJECT)]
    assert (outbox[1].key, outbox[1].payload) == (row.subject_id, event.as_record())


async def test_published_messages_leave_the_pending_outbox_and_are_discarded_later(store: ConsentStore) -> None:
    row = subject_row()
    await registered(store, row)
    await saved(store, *(change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, v) for v in (1, 2, 3)))
    first, second, third = await store.pending_outbox(100)
    assert await store.pending_outbox(2) == [first, second]
    published = datetime.now(UTC)
    await store.mark_published([first.id, second.id], published)
    assert await store.pending_outbox(100) == [third]
    assert await store.discard_published_outbox(published) == 0
    assert await store.discard_published_outbox(published + timedelta(microseconds=1)) == 2
    assert await store.pending_outbox(100) == [third]  # unpublished messages are never discarded


async def test_a_snapshot_lists_what_is_unpublished_as_of_its_instant(store: ConsentStore) -> None:
    empty = await store.snapshot(2)
    assert (empty.pending, empty.complete, empty.held) == ([], True, frozenset())
    row = subject_row()
    await registered(store, row)
    before = await store.now()
    assert before >= empty.taken_at
    await saved(store, *(change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, v) for v in (1, 2, 3)))
    first, second, third = await store.pending_outbox(100)
    snapshot = await store.snapshot(2)
    assert (snapshot.pending, snapshot.complete, snapshot.held) == ([first, second], False, frozenset())
    assert snapshot.taken_at >= before
    await store.settle([first.id, second.id], [], datetime.now(UTC))
    whole = await store.snapshot(2)
    assert (whole.pending, whole.complete) == ([third], True)
    assert whole.taken_at >= snapshot.taken_at


async def test_a_dead_letter_leaves_the_outbox_holds_its_subject_and_is_requeued_or_discarded(
    store: ConsentStore,
) -> None:
    row, other = subject_row(), subject_row()
    await registered(store, row, other)
    await saved(store, change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, 1))
    await saved(store, change(other, "direct_marketing", "sms", ConsentStatus.GRANTED, 1))
    poison, fine = await store.pending_outbox(100)
    at = datetime.now(UTC)
    await store.settle([fine.id], [(poison.id, "no Avro schema")], at)
    await store.settle([], [(fine.id, "published meanwhile: stays")], at)  # only unpublished rows move
    assert await store.pending_outbox(100) == []
    [dead] = await store.dead_letters()
    assert (dead.message, dead.reason) == (poison, "no Avro schema")
    assert (await store.snapshot(10)).held == {row.subject_id}

    requeued = await store.requeue_dead_letter(poison.id)
    assert requeued is not None and requeued.id > fine.id
    assert (requeued.topic, requeued.key, requeued.schema_name, requeued.payload) == (
        poison.topic,
        poison.key,
        poison.schema_name,
        poison.payload,
    )
    assert await store.pending_outbox(100) == [requeued]
    assert (await store.snapshot(10)).held == frozenset()
    assert await store.requeue_dead_letter(poison.id) is None
    await store.settle([], [(requeued.id, "still unknown")], at)
    assert not await store.discard_dead_letter(poison.id)
    assert await store.discard_dead_letter(requeued.id)
    assert await store.dead_letters() == [] and await store.pending_outbox(100) == []


async def test_now_is_the_stores_clock_inside_and_outside_a_unit_of_work(store: ConsentStore) -> None:
    outside = await store.now()
    async with store.transaction() as uow:
        inside = await uow.now()
        assert await uow.now() >= inside  # the clock, not the transaction's start
    assert outside <= inside <= await store.now()
    assert abs((inside - datetime.now(UTC)).total_seconds()) < 60


async def test_a_locked_subject_comes_with_the_clock_read_under_its_lock(store: ConsentStore) -> None:
    row = subject_row()
    await registered(store, row)
    before = await store.now()
    async with store.transaction() as uow:
        locked, at = await uow.lock_subject_at(row.subject_id)
        missing, later = await uow.lock_subject_at(str(uuid4()))
    assert (locked, missing) == (row, None)
    assert before <= at <= later


async def test_a_page_of_subjects_is_locked_in_id_order_with_their_consents(store: ConsentStore) -> None:
    rows = sorted((subject_row() for _ in range(3)), key=lambda r: UUID(r.subject_id))
    await registered(store, *reversed(rows))
    first, second, third = rows
    await saved(
        store,
        change(third, "direct_marketing", "sms", ConsentStatus.GRANTED, 1),
        change(first, "direct_marketing", "sms", ConsentStatus.GRANTED, 1),
        change(first, "direct_marketing", "email", ConsentStatus.WITHDRAWN, 1),
    )
    asked = [third.subject_id, str(uuid4()), first.subject_id, third.subject_id]
    async with store.transaction() as uow:
        assert await uow.lock_subjects(asked) == [first, third]  # unknown ids left out, each once
        consents = await uow.consents_of([third.subject_id, first.subject_id, second.subject_id])
    assert [(c.subject_id, c.record.channel) for c in consents] == [
        (first.subject_id, "email"),
        (first.subject_id, "sms"),
        (third.subject_id, "sms"),
    ]
    assert consents[:2] == await store.consents(first.subject_id)


async def test_a_response_is_remembered_once_per_idempotency_key(store: ConsentStore) -> None:
    row = subject_row()
    await registered(store, row)
    stored = StoredResponse(row.subject_id, "fingerprint", {"subject_id": row.subject_id, "changes": [{"v": 1}]})
    async with store.transaction() as uow:
        assert await uow.stored_response("retry-key-0001") is None
        await uow.remember_response("retry-key-0001", stored)
    async with store.transaction() as uow:
        assert await uow.stored_response("retry-key-0001") == stored
    with pytest.raises(AlreadyStored):
        async with store.transaction() as uow:
            await uow.remember_response("retry-key-0001", StoredResponse(row.subject_id, "other", {}))
    async with store.transaction() as uow:
        assert await uow.stored_response("retry-key-0001") == stored


async def test_an_exception_rolls_the_whole_unit_of_work_back(store: ConsentStore) -> None:
    row = subject_row(national_id="n1")
    event = SubjectChanged(str(uuid4()), row.subject_id, "consumer", "DK", None, None, None, "n1", False, 1, T0)
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with store.transaction() as uow:
            await uow.insert_subject(row)
            await uow.enqueue_subject(SUBJECTS, event)
            await uow.save_changes([change(row, "direct_marketing", "sms", ConsentStatus.GRANTED, 1)], "a", CHANGES)
            await uow.remember_response("retry-key-0002", StoredResponse(row.subject_id, "h", {}))
            raise RuntimeError("changed my mind")
    assert await store.subject(row.subject_id) is None
    assert await store.subject_by_national_id("n1") is None
    assert await store.consents(row.subject_id) == []
    assert await store.ledger(row.subject_id) == []
    assert await store.pending_outbox(100) == []
    async with store.transaction() as uow:
        assert await uow.stored_response("retry-key-0002") is None
        await uow.insert_subject(row)  # the national id was never taken
    assert await store.subject(row.subject_id) == row


# -- the sweeper's queries --------------------------------------------------------------------------------


async def test_subjects_with_grants_lapsing_by_an_instant_are_paged_in_order(store: ConsentStore) -> None:
    at = T0 + timedelta(days=400)
    lapsed, lapsing_now, in_force, unlimited, withdrawn = (subject_row() for _ in range(5))
    await registered(store, lapsed, lapsing_now, in_force, unlimited, withdrawn)
    grant = ConsentStatus.GRANTED
    await saved(
        store,
        change(lapsed, "direct_marketing", "sms", grant, 1, valid_until=at - timedelta(days=1)),
        change(lapsed, "direct_marketing", "email", grant, 1, valid_until=at - timedelta(days=2)),
        change(lapsing_now, "personalised_offers", None, grant, 1, valid_until=at),
        change(in_force, "direct_marketing", "sms", grant, 1, valid_until=at + timedelta(seconds=1)),
        change(unlimited, "product_development", None, grant, 1),
        change(withdrawn, "direct_marketing", "sms", ConsentStatus.WITHDRAWN, 1),
    )
    expected = sorted([lapsed.subject_id, lapsing_now.subject_id])
    assert await store.subjects_with_grants_until(at, None, 10) == expected
    assert await store.subjects_with_grants_until(at, None, 1) == expected[:1]
    assert await store.subjects_with_grants_until(at, expected[0], 1) == expected[1:]
    assert await store.subjects_with_grants_until(at, expected[1], 1) == []
    assert await store.subjects_with_grants_until(T0, None, 10) == []


async def test_documented_withdrawals_are_candidates_and_purged_only_at_their_version(store: ConsentStore) -> None:
    cutoff = T0 + timedelta(days=10)
    old, recent, granted, other_purpose = (subject_row() for _ in range(4))
    await registered(store, old, recent, granted, other_purpose)
    dm = "direct_marketing"
    await saved(
        store,
        change(old, dm, "sms", ConsentStatus.GRANTED, 1),
        change(old, dm, "sms", ConsentStatus.WITHDRAWN, 2, T0 + timedelta(days=1)),
        change(old, dm, "email", ConsentStatus.EXPIRED, 1, T0 + timedelta(days=2)),
        change(recent, dm, "sms", ConsentStatus.REVOKED, 1, cutoff),
        change(granted, dm, "sms", ConsentStatus.GRANTED, 1),
        change(other_purpose, "personalised_offers", None, ConsentStatus.WITHDRAWN, 1),
    )
    purpose = PurposeCode(dm)
    candidates = await store.documented_withdrawals(purpose, cutoff, None, 10)
    assert [(c.subject_id, c.record.channel, c.record.version) for c in candidates] == [
        (old.subject_id, Channel.EMAIL, 1),
        (old.subject_id, Channel.SMS, 2),
    ]
    first, second = candidates
    assert await store.documented_withdrawals(purpose, cutoff, None, 1) == [first]
    assert await store.documented_withdrawals(purpose, cutoff, first, 1) == [second]
    assert await store.documented_withdrawals(purpose, cutoff, second, 1) == []

    stale = second
    await saved(store, change(old, dm, "sms", ConsentStatus.GRANTED, 3, T0 + timedelta(days=3)))
    before = len(await store.pending_outbox(1000))
    assert await store.purge_documentation([stale], CHANGES) == 0  # regranted since it was judged: documentation stays
    assert len(await store.ledger(old.subject_id)) == 4
    assert len(await store.pending_outbox(1000)) == before  # and no tombstone
    assert await store.purge_documentation([first], CHANGES) == 1
    # the purge and the tombstone of its key commit together
    [tombstone] = (await store.pending_outbox(1000))[before:]
    assert (tombstone.topic, tombstone.schema_name, tombstone.payload) == (CHANGES, OUTBOX_CONSENT, None)
    assert tombstone.key == consent_key(first.subject_id, first.record.purpose, first.record.channel)
    assert [(e.channel, e.version) for e in await store.ledger(old.subject_id)] == [
        (Channel.SMS, 1),
        (Channel.SMS, 2),
        (Channel.SMS, 3),
    ]
    assert await store.documented_withdrawals(purpose, cutoff, None, 10) == []  # nothing left to purge
    assert [c.record.version for c in await store.consents(old.subject_id)] == [1, 3]  # the state stays
    assert await store.purge_documentation([], CHANGES) == 0
    assert len(await store.ledger(recent.subject_id)) == len(await store.ledger(other_purpose.subject_id)) == 1
