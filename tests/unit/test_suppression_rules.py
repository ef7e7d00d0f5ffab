"""Suppression decision rules, case by case (pure: no sockets)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from samtykke.domain.catalog import load_catalog
from samtykke.domain.identifiers import identifier_hash
from samtykke.domain.registers import Register, RegisterBook, RegisterSnapshot, Standing
from samtykke.domain.suppression import (
    ERASED,
    UNKNOWN,
    Reason,
    SubjectState,
    SuppressionRules,
    Verdict,
    combine,
    suppressed_entries,
)

CATALOG = load_catalog()
RULES = SuppressionRules(CATALOG)
NOW = 1_800_000_000.0
DAY = 86400.0
KEY = b"unit-test-identifier-key"
PHONE_SE = identifier_hash(KEY, "phone", "+46701234567")
FRESHNESS = {"NIX": 60, "ROBINSON": 92, "RESERVASJON": 31}


def book(*listed: str, published: date | None = None) -> RegisterBook:
    registers = RegisterBook(dict(FRESHNESS))
    today = published or date.fromtimestamp(NOW)
    for register in Register:
        registers.install(RegisterSnapshot(register, today, frozenset(listed)))
    return registers


def subject(country: str = "DK", kind: str = "consumer", phone: str | None = None) -> SubjectState:
    return SubjectState("s-1", kind, country, phone_hash=phone)


def check(
    state: SubjectState | None,
    purpose: str,
    channel: str | None,
    at: float = NOW,
    registers: RegisterBook | None = None,
) -> Verdict:
    return RULES.decide(state, CATALOG.purposes[purpose], channel, at, registers or book())  # type: ignore[index]


def grant(
    state: SubjectState,
    purpose: str,
    channel: str | None,
    version: int = 1,
    valid_until: float | None = NOW + 300 * DAY,
    status: str = "granted",
) -> None:
    RULES.apply_consent(state, purpose, channel, status, version, valid_until)


def test_opt_in_needs_a_grant_in_force() -> None:
    state = subject()
    assert check(state, "direct_marketing", "sms").reasons == (Reason.NO_CONSENT,)
    grant(state, "direct_marketing", "sms")
    verdict = check(state, "direct_marketing", "sms")
    assert verdict.allowed and verdict.valid_until == NOW + 300 * DAY
    assert check(state, "direct_marketing", "email").reasons == (Reason.NO_CONSENT,)


def test_a_grant_past_its_valid_until_is_expired_without_any_event() -> None:
    state = subject()
    grant(state, "direct_marketing", "sms", valid_until=NOW + 5)
    assert check(state, "direct_marketing", "sms", at=NOW + 4.9).allowed
    assert check(state, "direct_marketing", "sms", at=NOW + 5).reasons == (Reason.EXPIRED,)


@pytest.mark.parametrize(
    "status, reason", [("withdrawn", Reason.WITHDRAWN), ("revoked", Reason.WITHDRAWN), ("expired", Reason.EXPIRED)]
)
def test_opt_in_refusals_name_their_reason(status: str, reason: Reason) -> None:
    state = subject()
    grant(state, "direct_marketing", "sms")
    grant(state, "direct_marketing", "sms", version=2, status=status, valid_until=None)
    assert check(state, "direct_marketing", "sms").reasons == (reason,)


def test_opt_out_is_allowed_unless_objected_per_channel() -> None:
    state = subject(kind="business")
    assert check(state, "existing_customer_offers", "email").allowed
    grant(state, "existing_customer_offers", "email", status="withdrawn", valid_until=None)
    assert check(state, "existing_customer_offers", "email").reasons == (Reason.OBJECTED,)
    assert check(state, "existing_customer_offers", "sms").allowed


def test_general_objection_blocks_every_marketing_purpose_and_channel() -> None:
    state = subject()
    grant(state, "third_party_marketing", "sms")
    for version, channel in enumerate(("sms", "email", "phone", "post", "push"), start=1):
        grant(state, "direct_marketing", channel, status="withdrawn", valid_until=None)
        objected = version == 5
        assert (Reason.OBJECTED in check(state, "existing_customer_offers", "sms").reasons) is objected
    assert check(state, "third_party_marketing", "sms").reasons == (Reason.OBJECTED,)
    assert check(state, "personalised_offers", None).reasons == (Reason.OBJECTED, Reason.NO_CONSENT)
    grant(state, "direct_marketing", "email", version=2)  # a newer grant lifts the general objection
    assert check(state, "existing_customer_offers", "sms").allowed
    assert check(state, "direct_marketing", "sms").reasons == (Reason.WITHDRAWN,)


def test_service_messages_ignore_marketing_choices_but_not_erasure() -> None:
    state = subject()
    for channel in ("sms", "email", "phone", "post", "push"):
        grant(state, "direct_marketing", channel, status="withdrawn", valid_until=None)
    assert check(state, "service_delivery", "sms").allowed
    state.erased = True
    assert check(state, "service_delivery", "sms") == ERASED
    assert check(state, "direct_marketing", "sms") == ERASED


def test_unknown_subject_is_blocked() -> None:
    assert check(None, "service_delivery", None) == UNKNOWN


def test_register_blocks_unless_an_explicit_grant_for_that_channel() -> None:
    state = subject("SE", phone=PHONE_SE)
    listed = book(PHONE_SE)
    assert check(state, "direct_marketing", "phone", registers=listed).reasons == (
        Reason.NO_CONSENT,
        Reason.REGISTER_NIX,
    )
    assert check(state, "existing_customer_offers", "phone", registers=listed).reasons == (Reason.REGISTER_NIX,)
    assert check(state, "existing_customer_offers", "sms", registers=listed).allowed  # NIX: phone only
    assert check(state, "existing_customer_offers", "post", registers=listed).allowed
    grant(state, "direct_marketing", "phone")
    assert check(state, "direct_marketing", "phone", registers=listed).allowed
    assert check(state, "existing_customer_offers", "phone", registers=listed).allowed
    assert check(state, "service_delivery", "phone", registers=listed).allowed


def test_robinson_and_reservasjon_cover_phone_and_post() -> None:
    for country, reason in (("DK", Reason.REGISTER_ROBINSON), ("NO", Reason.REGISTER_RESERVASJON)):
        state = subject(country, phone=PHONE_SE)
        for channel in ("phone", "post"):
            assert check(state, "existing_customer_offers", channel, registers=book(PHONE_SE)).reasons == (reason,)


def test_a_register_past_its_freshness_window_is_stale() -> None:
    state = subject("SE", phone=PHONE_SE)
    old = book(published=date.fromtimestamp(NOW) - timedelta(days=61))
    verdict = check(state, "existing_customer_offers", "phone", registers=old)
    assert verdict.reasons == (Reason.STALE,) and verdict.evidence[0].standing is Standing.STALE
    assert check(state, "existing_customer_offers", "phone", registers=RegisterBook(dict(FRESHNESS))).reasons == (
        Reason.STALE,
    )
    fresh = check(state, "existing_customer_offers", "phone", registers=book())
    assert fresh.allowed and fresh.valid_until == fresh.evidence[0].fresh_until


def test_a_subject_without_a_phone_cannot_be_listed() -> None:
    assert check(subject("SE"), "existing_customer_offers", "phone", registers=RegisterBook(dict(FRESHNESS))).allowed


def test_older_versions_never_override_newer_ones() -> None:
    state = subject()
    grant(state, "direct_marketing", "sms", version=3, status="withdrawn", valid_until=None)
    assert not RULES.apply_consent(state, "direct_marketing", "sms", "granted", 2, NOW + DAY)
    assert check(state, "direct_marketing", "sms").reasons == (Reason.WITHDRAWN,)


def test_combined_identifier_is_allowed_only_if_every_holder_allows() -> None:
    yes, no = Verdict(True, (), NOW + 10), Verdict(False, (Reason.WITHDRAWN,))
    assert combine([yes, no]).reasons == (Reason.WITHDRAWN,)
    assert combine([yes, Verdict(True, (), NOW + 5)]).valid_until == NOW + 5
    assert combine([]) == UNKNOWN


def test_suppressed_entries_list_explicit_suppressions_only() -> None:
    state = subject()
    grant(state, "direct_marketing", "sms", status="withdrawn", valid_until=None)
    entries = suppressed_entries(RULES, state, NOW, book())
    assert entries == {("direct_marketing", "sms"): (Reason.WITHDRAWN,)}
    state.erased = True
    assert set(suppressed_entries(RULES, state, NOW, book()).values()) == {(Reason.ERASED,)}


def test_a_tombstone_forgets_the_consent_and_an_opt_in_without_record_stays_blocked() -> None:
    state = subject()
    grant(state, "direct_marketing", "sms", status="withdrawn", valid_until=None)
    assert RULES.remove_consent(state, "direct_marketing", "sms")
    assert check(state, "direct_marketing", "sms").reasons == (Reason.NO_CONSENT,)
    assert not RULES.remove_consent(state, "direct_marketing", "sms")  # a second tombstone changes nothing
