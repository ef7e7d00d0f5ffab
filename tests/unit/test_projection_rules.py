"""The pure projection rules: what each domain's rows are, and the laws the projectors rely on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.projection import (
    account_pseudonym,
    check_change,
    check_subject,
    daily_deltas,
    guarded,
    latest_changes,
    marketable,
    marketing_consent,
    pseudonym,
    timeline_evidence,
    traffic_data_use,
)

CATALOG = load_catalog()
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
KEY = b"unit-test-pseudonym-key"


def change(
    subject: str = "s1",
    purpose: str = "direct_marketing",
    channel: str | None = "sms",
    status: str = "granted",
    version: int = 1,
    previous: str | None = None,
    at: datetime = NOW,
    valid_until: datetime | None = None,
    kind: str = "consumer",
    account: str | None = None,
) -> ConsentChanged:
    return ConsentChanged(
        event_id=f"{subject}-{purpose}-{channel}-{version}",
        subject_id=subject,
        subject_kind=kind,
        account_id=account,
        country="DK",
        purpose=purpose,
        channel=channel,
        status=status,
        previous_status=previous,
        version=version,
        occurred_at=at,
        recorded_at=at,
        valid_until=valid_until,
        source="self_service",
        actor_kind="subject",
        notice_version="n1",
        evidence_ref="ev",
        correlation_id=None,
    )


def subject(
    subject_id: str, kind: str = "consumer", account: str | None = None, erased: bool = False, version: int = 1
) -> SubjectChanged:
    return SubjectChanged(
        event_id="e",
        subject_id=subject_id,
        kind=kind,
        country="DK",
        account_id=account,
        phone_hash=None,
        email_hash=None,
        national_id_hash=None,
        erased=erased,
        version=version,
        occurred_at=NOW,
    )


def test_rule_check_names_what_makes_an_event_poison() -> None:
    assert check_change(CATALOG, change()) is None
    assert check_change(CATALOG, change(status="bogus")) == "unknown status 'bogus'"
    assert check_change(CATALOG, change(purpose="nope")) == "unknown consent purpose 'nope'"
    assert check_change(CATALOG, change(purpose="billing", channel=None)) == "unknown consent purpose 'billing'"
    assert "does not fit" in (check_change(CATALOG, change(purpose="fault_prevention", channel="sms")) or "")
    assert "does not fit" in (check_change(CATALOG, change(channel=None)) or "")
    assert check_change(CATALOG, change(channel="fax")) == "unknown channel 'fax'"
    assert check_change(CATALOG, change(kind="robot")) == "unknown subject kind 'robot'"
    assert check_change(CATALOG, change(version=0)) == "version 0 is not positive"
    assert check_subject(subject("s1")) is None
    assert check_subject(replace(subject("s1"), country="FI")) == "unknown country 'FI'"


def test_version_guard_skips_duplicates_and_stale_events() -> None:
    v1, v2, v3 = (change(version=v) for v in (1, 2, 3))
    assert guarded([v1, v2, v2, v1, v3], {}) == [v1, v2, v3]
    assert guarded([v1, v2, v3], {("s1", "direct_marketing", "sms"): 2}) == [v3]
    assert latest_changes([v3, v1, v2])[("s1", "direct_marketing", "sms")] is v3


def test_marketing_row_lapse_date_and_purposes_it_ignores() -> None:
    until = NOW + timedelta(days=365)
    row = marketing_consent(CATALOG, change(valid_until=until))
    assert row is not None and row.in_force and row.lapse_date == until.date() and row.mechanism == "opt_in"
    expired = marketing_consent(CATALOG, change(status="expired", version=2, previous="granted"))
    assert expired is not None and not expired.in_force and expired.lapse_date == NOW.date()
    withdrawn = marketing_consent(CATALOG, change(status="withdrawn", version=2))
    assert withdrawn is not None and withdrawn.lapse_date is None and not withdrawn.in_force
    assert marketing_consent(CATALOG, change(purpose="product_development", channel=None)) is None


def test_marketable_checks_valid_until_opt_out_default_and_erasure() -> None:
    rows = [
        r
        for r in (
            marketing_consent(CATALOG, change("a", valid_until=NOW + timedelta(days=1))),
            marketing_consent(CATALOG, change("b", valid_until=NOW - timedelta(seconds=1))),  # lapsed, no event yet
            marketing_consent(CATALOG, change("c", valid_until=NOW + timedelta(days=1))),
            marketing_consent(CATALOG, change("a", "existing_customer_offers", "email", "withdrawn")),
        )
        if r is not None
    ]
    subjects = {s.subject_id: s for s in (subject("a"), subject("b"), subject("c", erased=True))}
    allowed = marketable(CATALOG, rows, subjects, NOW)
    assert ("a", "direct_marketing", "sms") in allowed
    assert ("b", "direct_marketing", "sms") not in allowed
    assert not any(key[0] == "c" for key in allowed)
    assert ("a", "existing_customer_offers", "sms") in allowed  # opt-out: allowed unless objected
    assert ("a", "existing_customer_offers", "email") not in allowed
    assert ("b", "existing_customer_offers", "email") in allowed


def test_pseudonyms_are_keyed_and_stable() -> None:
    assert pseudonym(KEY, "s1") == pseudonym(KEY, "s1") != pseudonym(b"another-key-entirely", "s1")
    assert "s1" not in pseudonym(KEY, "s1") and len(pseudonym(KEY, "s1")) == 64
    assert account_pseudonym(KEY, "s1") != pseudonym(KEY, "s1")  # subjects and accounts never collide
    assert account_pseudonym(KEY, None) is None


def test_daily_deltas_count_status_changes_not_uses() -> None:
    deltas = daily_deltas(
        [
            change(version=1),
            change(version=2, previous="granted", status="granted"),  # a reported use: no status change
            change(version=3, previous="granted", status="withdrawn"),
        ]
    )
    day = NOW.date()
    assert deltas == {
        (day, "direct_marketing", "granted", "DK"): (1, 1),
        (day, "direct_marketing", "withdrawn", "DK"): (1, 0),
    }
    assert isinstance(next(iter(deltas))[0], date)


def test_employees_use_the_traffic_data_purposes_their_company_granted() -> None:
    subjects = {
        s.subject_id: s
        for s in (
            subject("biz", "business", "ACME"),
            subject("emp", "employee", "ACME"),
            subject("other", "employee", "OTHER"),
            subject("con"),
        )
    }
    latest = latest_changes(
        [
            change("biz", "fault_prevention", None, kind="business", account="ACME"),
            change("biz", "product_development", None, status="revoked", kind="business", account="ACME"),
            change("con", "personalised_offers", None, valid_until=NOW - timedelta(days=1)),  # lapsed
            change("con", "product_development", None),
        ]
    )
    uses = traffic_data_use(CATALOG, subjects, latest, NOW)
    assert uses == {
        ("biz", "fault_prevention", "self"),
        ("emp", "fault_prevention", "company"),
        ("con", "product_development", "self"),
    }
    subjects["biz"] = subject("biz", "business", "ACME", erased=True, version=2)
    assert traffic_data_use(CATALOG, subjects, latest, NOW) == {("con", "product_development", "self")}


def test_erasure_drops_evidence_from_the_timeline() -> None:
    assert timeline_evidence(change(), erased=False) is True
    assert timeline_evidence(change(), erased=True) is False


def test_a_record_on_a_topic_carries_no_evidence_text() -> None:
    record = change().as_record()
    assert (record["evidence_ref"], record["evidence_on_file"]) == (None, True)
    assert ConsentChanged.from_record(record).evidence_on_file is True
    old = record | {"evidence_ref": "ev", "evidence_on_file": False}  # written before v4
    read = ConsentChanged.from_record(old)
    assert (read.evidence_ref, read.evidence_on_file) == (None, True)


histories = st.lists(
    st.tuples(
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["sms", "email"]),
        st.sampled_from(["granted", "withdrawn", "revoked"]),
    ),
    max_size=30,
)


@settings(max_examples=50, deadline=None)
@given(histories, st.lists(st.integers(min_value=1, max_value=7), max_size=10), st.booleans())
def test_batched_guarded_application_equals_the_fold_even_when_replayed(
    steps: list[tuple[str, str, str]],
    cuts: list[int],
    replay: bool,
) -> None:
    versions: dict[tuple[str, str], int] = {}
    events = []
    for subject_id, channel, status in steps:
        versions[(subject_id, channel)] = versions.get((subject_id, channel), 0) + 1
        events.append(change(subject_id, channel=channel, status=status, version=versions[(subject_id, channel)]))
    delivered = events + events if replay else events
    table: dict[tuple[str, str, str], ConsentChanged] = {}
    applied: list[ConsentChanged] = []
    position = 0
    for size in [*cuts, len(delivered)]:
        batch, position = delivered[position : position + size], position + size
        fresh = guarded(batch, {k: v.version for k, v in table.items()})
        applied += fresh
        table.update(latest_changes(fresh))
    assert table == latest_changes(events)
    assert applied == events  # each change counted exactly once: the daily aggregate's law
    assert daily_deltas(applied) == daily_deltas(events)
