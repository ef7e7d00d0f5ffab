"""The lifecycle sweeper on the memory store: it expires and purges by the domain's rules, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from prometheus_client import CollectorRegistry

from samtykke.consent.memory import MemoryConsentStore
from samtykke.consent.metrics import ConsentMetrics
from samtykke.consent.ports import OUTBOX_CONSENT, SubjectRow
from samtykke.consent.sweeper import OUTBOX_KEEP, LifecycleSweeper
from samtykke.domain.catalog import load_catalog
from samtykke.domain.consent import documentation_deadline
from samtykke.domain.events import ConsentChanged
from samtykke.domain.model import Channel, ConsentStatus, Mechanism, PurposeCode, SubjectKind

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
CATALOG = load_catalog()
TOPIC = "consent.changes"


@pytest.fixture
def store() -> MemoryConsentStore:
    return MemoryConsentStore()


def sweeper(store: MemoryConsentStore, batch_size: int = 500) -> LifecycleSweeper:
    return LifecycleSweeper(store, CATALOG, ConsentMetrics(CollectorRegistry()), TOPIC, 3600, batch_size)


async def subject(store: MemoryConsentStore) -> SubjectRow:
    row = SubjectRow(
        str(uuid4()), SubjectKind.CONSUMER, "DK", None, None, None, None, None, None, None, 1, T0, T0, None
    )
    async with store.transaction() as uow:
        await uow.insert_subject(row)
    return row


async def record(
    store: MemoryConsentStore,
    row: SubjectRow,
    purpose: str,
    channel: str | None,
    status: ConsentStatus,
    occurred_at: datetime,
    valid_until: datetime | None = None,
    last_used_at: datetime | None = None,
) -> None:
    current = {(c.record.purpose, c.record.channel): c.record for c in await store.consents(row.subject_id)}
    before = current.get((PurposeCode(purpose), Channel(channel) if channel else None))
    change = ConsentChanged(
        str(uuid4()),
        row.subject_id,
        row.kind.value,
        None,
        row.country,
        purpose,
        channel,
        status.value,
        before.status.value if before else None,
        before.version + 1 if before else 1,
        occurred_at,
        occurred_at,
        valid_until,
        "self_service",
        "subject",
        None,
        "evidence",
        None,
        last_used_at,
    )
    async with store.transaction() as uow:
        await uow.save_changes([change], None, TOPIC)


@pytest.mark.parametrize("page", [1, 2, 500])  # pages of one, a page cut between subjects, one page for all
async def test_a_grant_past_its_valid_until_becomes_an_expired_change(store: MemoryConsentStore, page: int) -> None:
    now = T0 + timedelta(days=400)
    lapsed, lapsing_now, in_force = await subject(store), await subject(store), await subject(store)
    await record(store, lapsed, "direct_marketing", "sms", ConsentStatus.GRANTED, T0, T0 + timedelta(days=365))
    await record(store, lapsed, "direct_marketing", "email", ConsentStatus.WITHDRAWN, T0)  # nothing to expire
    await record(store, lapsing_now, "personalised_offers", None, ConsentStatus.GRANTED, T0, now)
    await record(store, in_force, "direct_marketing", "sms", ConsentStatus.GRANTED, T0, now + timedelta(seconds=1))
    await record(store, in_force, "product_development", None, ConsentStatus.GRANTED, T0)  # never lapses
    published = await store.pending_outbox(100)

    report = await sweeper(store, batch_size=page).sweep(now)  # the paging must go on

    assert report.expired == 2
    withdrawn, expired = await store.consents(lapsed.subject_id)
    assert (withdrawn.record.status, withdrawn.record.version) == (ConsentStatus.WITHDRAWN, 1)
    assert (expired.record.status, expired.record.version) == (ConsentStatus.EXPIRED, 2)
    assert (expired.record.occurred_at, expired.record.valid_until) == (T0 + timedelta(days=365), None)
    assert [c.record.status for c in await store.consents(lapsing_now.subject_id)] == [ConsentStatus.EXPIRED]
    assert {c.record.status for c in await store.consents(in_force.subject_id)} == {ConsentStatus.GRANTED}
    events = (await store.pending_outbox(100))[len(published) :]
    assert {(m.key, m.schema_name) for m in events} == {
        (f"{lapsed.subject_id}/direct_marketing/sms", OUTBOX_CONSENT),
        (f"{lapsing_now.subject_id}/personalised_offers/-", OUTBOX_CONSENT),
    }
    for message in events:
        assert message.topic == TOPIC
        assert (message.payload["status"], message.payload["previous_status"]) == ("expired", "granted")
        assert (message.payload["source"], message.payload["actor_kind"]) == ("system", "system")
    assert (await sweeper(store).sweep(now)).expired == 0


async def test_documentation_goes_when_the_domain_deadline_has_passed_and_not_a_day_before(
    store: MemoryConsentStore,
) -> None:
    purpose = CATALOG.purposes[PurposeCode("direct_marketing")]
    row = await subject(store)
    used = T0 + timedelta(days=100)
    await record(store, row, "direct_marketing", "sms", ConsentStatus.GRANTED, T0, T0 + timedelta(days=365))
    await record(store, row, "direct_marketing", "sms", ConsentStatus.WITHDRAWN, T0 + timedelta(days=150), None, used)
    [withdrawn] = await store.consents(row.subject_id)
    deadline = documentation_deadline(purpose, withdrawn.record)
    assert deadline is not None

    early = await sweeper(store).sweep(deadline - timedelta(days=1))
    assert early.purged_ledger_rows == 0 and len(await store.ledger(row.subject_id)) == 2
    assert (await sweeper(store).sweep(deadline)).purged_ledger_rows == 0

    before = len(await store.pending_outbox(100))
    late = await sweeper(store).sweep(deadline + timedelta(seconds=1))
    assert late.purged_ledger_rows == 2
    assert await store.ledger(row.subject_id) == []
    assert await store.consents(row.subject_id) == [withdrawn]  # the state (no personal data) stays
    # the topic's copy goes too: one tombstone for the consent, enqueued with the purge
    [tombstone] = (await store.pending_outbox(100))[before:]
    key = f"{row.subject_id}/direct_marketing/sms"
    assert (tombstone.topic, tombstone.key, tombstone.payload) == (TOPIC, key, None)


async def test_objections_to_opt_out_purposes_and_live_grants_are_never_purged(store: MemoryConsentStore) -> None:
    opt_out = [p for p in CATALOG.purposes.values() if p.mechanism is Mechanism.OPT_OUT]
    assert opt_out, "the catalog has opt-out purposes"
    row = await subject(store)
    for purpose in opt_out:
        channel = purpose.channels[SubjectKind.CONSUMER][0].value if purpose.per_channel else None
        await record(store, row, purpose.code, channel, ConsentStatus.WITHDRAWN, T0)
    await record(store, row, "product_development", None, ConsentStatus.GRANTED, T0)
    before = await store.ledger(row.subject_id)

    report = await sweeper(store).sweep(T0 + timedelta(days=365 * 20))

    assert report.purged_ledger_rows == 0
    assert await store.ledger(row.subject_id) == before


async def test_published_outbox_rows_are_kept_for_a_week(store: MemoryConsentStore) -> None:
    row = await subject(store)
    for channel in ("sms", "email", "phone"):
        await record(store, row, "direct_marketing", channel, ConsentStatus.WITHDRAWN, T0)
    old, recent, pending = await store.pending_outbox(100)
    now = datetime.now(UTC)
    await store.mark_published([old.id], now - OUTBOX_KEEP - timedelta(seconds=1))
    await store.mark_published([recent.id], now - OUTBOX_KEEP + timedelta(minutes=1))

    report = await sweeper(store).sweep(now)

    assert report.purged_outbox_rows == 1
    left, *tombstones = await store.pending_outbox(100)  # the withdrawals' documentation was due too
    assert left == pending and [t.payload for t in tombstones] == [None, None, None]
    await store.mark_published([pending.id], now)
    assert await store.discard_published_outbox(now + timedelta(microseconds=1)) == 2  # `recent` was kept


async def test_an_erased_subjects_lapsed_grant_makes_no_change(store: MemoryConsentStore) -> None:
    row = await subject(store)
    await record(store, row, "direct_marketing", "sms", ConsentStatus.GRANTED, T0, T0 + timedelta(days=365))
    async with store.transaction() as uow:  # its consents left the log with the erasure's tombstones
        await uow.erase_subject(row.subject_id, T0 + timedelta(days=1))
    assert (await sweeper(store).sweep(T0 + timedelta(days=400))).expired == 0


async def test_an_erased_subject_in_a_page_leaves_the_others_lapsing(store: MemoryConsentStore) -> None:
    erased, lapsed = await subject(store), await subject(store)
    for row in (erased, lapsed):
        await record(store, row, "direct_marketing", "sms", ConsentStatus.GRANTED, T0, T0 + timedelta(days=365))
    async with store.transaction() as uow:
        await uow.erase_subject(erased.subject_id, T0 + timedelta(days=1))
    assert (await sweeper(store).sweep(T0 + timedelta(days=400))).expired == 1
    assert [c.record.status for c in await store.consents(lapsed.subject_id)] == [ConsentStatus.EXPIRED]


async def test_direct_marketing_refused_on_every_channel_stays_documented(store: MemoryConsentStore) -> None:
    # on the topic those refusals are the general objection that blocks the opt-out purposes too
    channels = [c.value for c in CATALOG.purposes[PurposeCode("direct_marketing")].channels[SubjectKind.CONSUMER]]
    objecting, partly = await subject(store), await subject(store)
    for channel in channels:
        await record(store, objecting, "direct_marketing", channel, ConsentStatus.WITHDRAWN, T0)
    await record(store, partly, "direct_marketing", channels[0], ConsentStatus.WITHDRAWN, T0)

    report = await sweeper(store).sweep(T0 + timedelta(days=365 * 20))

    assert report.purged_ledger_rows == 1  # only the subject that does not object to all marketing
    assert len(await store.ledger(objecting.subject_id)) == len(channels)
    assert await store.ledger(partly.subject_id) == []
