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
    state_at,
    status_at,
)
from samtykke.domain.model import ActorKind, Channel, ConsentAction, ConsentStatus, SubjectKind

CATALOG = load_catalog()
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
