"""Consent lifecycle rules (pure): validation, lapse, usage, expiry, state at an instant."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from samtykke.domain.catalog import load_catalog
from samtykke.domain.consent import (
    ConsentRecord,
    Decision,
    apply_decision,
    apply_usage,
    check_decision,
    documentation_deadline,
    expire,
    in_force,
    state_at,
    status_at,
)
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import ActorKind, Channel, ConsentAction, ConsentStatus, PurposeCode, SubjectId, SubjectKind
from samtykke.domain.projection import marketable, marketing_consent
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import SubjectState, SuppressionRules

CATALOG = load_catalog()
SUPPRESSION = SuppressionRules(CATALOG)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
DM = CATALOG.purposes["direct_marketing"]


def _rules(kind: SubjectKind, decision: Decision, actor: ActorKind = ActorKind.SUBJECT) -> list[str]:
    return [f"{v.field}: {v.rule}" for v in check_decision(CATALOG, kind, actor, decision, "d", NOW, None)]


def test_catalog_has_the_seeded_purposes() -> None:
    codes = set(CATALOG.purposes)
    assert {
        "direct_marketing",
        "third_party_marketing",
        "personalised_offers",
        "product_development",
        "customer_service_improvement",
        "fault_prevention",
        "existing_customer_offers",
    } <= codes
    assert CATALOG.purposes["existing_customer_offers"].mechanism.value == "opt_out"
    assert not CATALOG.purposes["billing"].decidable


def test_each_broken_rule_names_its_field() -> None:
    grant = ConsentAction.GRANT
    assert _rules(SubjectKind.CONSUMER, Decision("nope", None, grant, NOW)) == ["d.purpose: unknown purpose 'nope'"]
    assert "d.channel" in _rules(SubjectKind.CONSUMER, Decision("direct_marketing", None, grant, NOW))[0]
    assert "omit channel" in _rules(SubjectKind.CONSUMER, Decision("fault_prevention", Channel.SMS, grant, NOW))[0]
    assert "not a channel" in _rules(SubjectKind.EMPLOYEE, Decision("direct_marketing", Channel.PHONE, grant, NOW))[0]
    assert (
        "future"
        in _rules(SubjectKind.CONSUMER, Decision("direct_marketing", Channel.SMS, grant, NOW + timedelta(hours=1)))[0]
    )
    assert "contract" in _rules(SubjectKind.CONSUMER, Decision("billing", None, grant, NOW))[0]
    assert "actor.kind" in _rules(SubjectKind.BUSINESS, Decision("product_development", None, grant, NOW))[0]
    assert (
        _rules(SubjectKind.BUSINESS, Decision("product_development", None, grant, NOW), ActorKind.COMPANY_ADMIN) == []
    )
    assert (
        "revoke"
        in _rules(SubjectKind.CONSUMER, Decision("direct_marketing", Channel.SMS, ConsentAction.REVOKE, NOW))[0]
    )


def test_grant_lapses_after_the_catalog_period_and_use_moves_it() -> None:
    granted = apply_decision(DM, None, Decision("direct_marketing", Channel.SMS, ConsentAction.GRANT, NOW))
    assert granted.valid_until == NOW + timedelta(days=365)
    assert status_at(granted, NOW + timedelta(days=364)) is ConsentStatus.GRANTED
    assert status_at(granted, NOW + timedelta(days=365)) is ConsentStatus.EXPIRED
    used = apply_usage(DM, granted, NOW + timedelta(days=200))
    assert used is not None and used.version == 2
    assert used.valid_until == NOW + timedelta(days=565)
    assert apply_usage(DM, granted, NOW + timedelta(days=400)) is None  # already lapsed then
    lapsed = expire(granted)
    assert lapsed.status is ConsentStatus.EXPIRED and lapsed.version == 2


def test_documentation_is_kept_two_years_after_last_use() -> None:
    granted = apply_decision(DM, None, Decision("direct_marketing", Channel.SMS, ConsentAction.GRANT, NOW))
    assert documentation_deadline(DM, granted) is None
    withdrawn = apply_decision(
        DM, granted, Decision("direct_marketing", Channel.SMS, ConsentAction.WITHDRAW, NOW + timedelta(days=10))
    )
    assert documentation_deadline(DM, withdrawn) == NOW + timedelta(days=10 + 730)


actions = st.sampled_from(list(ConsentAction))
steps = st.lists(st.tuples(actions, st.integers(min_value=0, max_value=400)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(steps=steps, probe=st.integers(min_value=0, max_value=20_000))
def test_state_at_equals_applying_decisions_in_order(steps: list[tuple[ConsentAction, int]], probe: int) -> None:
    """Law: folding the ledger up to t gives the record that sequential application had at t."""
    history: list[ConsentRecord] = []
    current = None
    when = NOW - timedelta(days=20_000)
    for action, gap in steps:
        when += timedelta(days=gap)
        current = apply_decision(DM, current, Decision("direct_marketing", Channel.SMS, action, when))
        history.append(current)
    at = NOW - timedelta(days=20_000) + timedelta(days=probe)
    expected = [r for r in history if r.occurred_at <= at]
    folded = state_at(reversed(history), at)  # order of the ledger does not matter
    if not expected:
        assert folded == {}
    else:
        (record,) = folded.values()
        assert record.version == expected[-1].version
        assert record.status is status_at(expected[-1], at)
    assert state_at(history + history, at) == folded  # replaying twice changes nothing


# --- the one in-force rule, and every reader of a grant that uses it -------------------------
statuses = st.sampled_from(list(ConsentStatus))
offsets = st.integers(min_value=-86_400, max_value=86_400)  # seconds around NOW


def _instant(offset: int) -> datetime:
    return NOW + timedelta(seconds=offset)


@given(status=statuses, until=st.none() | offsets, at=offsets)
def test_in_force_is_one_rule_for_datetimes_and_epoch_seconds(
    status: ConsentStatus, until: int | None, at: int
) -> None:
    # a grant permits use strictly before its valid-until, and only a grant does
    expected = status is ConsentStatus.GRANTED and (until is None or until > at)
    valid_until = None if until is None else _instant(until)
    assert in_force(status, valid_until, _instant(at)) is expected
    epoch_until = None if valid_until is None else valid_until.timestamp()
    assert in_force(status.value, epoch_until, _instant(at).timestamp()) is expected


@given(status=statuses, until=st.none() | offsets, at=offsets)
def test_the_ledger_the_index_and_the_marketing_table_agree_on_a_grant_in_force(
    status: ConsentStatus, until: int | None, at: int
) -> None:
    valid_until, when = (None if until is None else _instant(until)), _instant(at)
    expected = in_force(status, valid_until, when)
    occurred = NOW - timedelta(days=2)
    record = ConsentRecord(PurposeCode("direct_marketing"), Channel.SMS, status, 1, occurred, valid_until)
    assert (status_at(record, when) is ConsentStatus.GRANTED) is expected

    state = SubjectState(SubjectId("s-1"), "consumer", "DK")
    epoch_until = None if valid_until is None else valid_until.timestamp()
    SUPPRESSION.apply_consent(state, "direct_marketing", "sms", status.value, 1, epoch_until)
    assert SUPPRESSION.decide(state, DM, "sms", when.timestamp(), RegisterBook({})).allowed is expected

    change = ConsentChanged(
        "e-1", "s-1", "consumer", None, "DK", "direct_marketing", "sms", status.value, None, 1, occurred, occurred,
        valid_until, "self_service", "subject", None, None, None,
    )  # fmt: skip
    row = marketing_consent(CATALOG, change)
    assert row is not None and row.in_force is in_force(status, valid_until, occurred)  # as of the change
    subject = SubjectChanged("e-0", "s-1", "consumer", "DK", None, None, None, None, False, 1, occurred)
    assert (("s-1", "direct_marketing", "sms") in marketable(CATALOG, [row], {"s-1": subject}, when)) is expected
