"""Laws of the suppression decision over random consent histories (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from samtykke.domain.catalog import load_catalog
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import Reason, SubjectState, SuppressionRules

CATALOG = load_catalog()
RULES = SuppressionRules(CATALOG)
NOW = 1_800_000_000.0
CHANNELS = ("sms", "email", "phone", "post", "push")
PURPOSES = ("direct_marketing", "third_party_marketing", "existing_customer_offers")
STATUSES = ("granted", "withdrawn", "revoked", "expired")
NO_REGISTERS = RegisterBook({})  # decisions are checked on sms and email, which no register covers


@dataclass(frozen=True)
class Change:
    purpose: str
    channel: str
    status: str
    valid_until: float | None


changes = st.builds(
    Change,
    st.sampled_from(PURPOSES),
    st.sampled_from(CHANNELS),
    st.sampled_from(STATUSES),
    st.one_of(st.none(), st.floats(NOW - 1000, NOW + 1000)),
).filter(lambda c: not (c.purpose == "third_party_marketing" and c.channel == "push"))


def versioned(history: list[Change]) -> list[tuple[Change, int]]:
    counters: dict[tuple[str, str], int] = {}
    out = []
    for change in history:
        key = (change.purpose, change.channel)
        counters[key] = counters.get(key, 0) + 1
        out.append((change, counters[key]))
    return out


def fold(events: list[tuple[Change, int]]) -> SubjectState:
    state = SubjectState("s", "consumer", "DK")
    for change, version in events:
        valid_until = change.valid_until if change.status == "granted" else None
        RULES.apply_consent(state, change.purpose, change.channel, change.status, version, valid_until)
    return state


def latest(events: list[tuple[Change, int]], purpose: str, channel: str) -> Change | None:
    found = [c for c, _ in events if (c.purpose, c.channel) == (purpose, channel)]
    return found[-1] if found else None


def allowed(state: SubjectState, purpose: str, channel: str, at: float) -> bool:
    return RULES.decide(state, CATALOG.purposes[purpose], channel, at, NO_REGISTERS).allowed  # type: ignore[index]


@settings(max_examples=300)
@given(st.lists(changes, max_size=40), st.randoms(use_true_random=False), st.floats(NOW - 2000, NOW + 2000))
def test_replay_in_any_order_with_duplicates_gives_the_same_decisions(
    history: list[Change], rnd: object, at: float
) -> None:
    events = versioned(history)
    shuffled = events + events[: len(events) // 2]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = fold(events), fold(shuffled)
    assert a.consents == b.consents
    for purpose in PURPOSES:
        for channel in ("sms", "email"):
            assert allowed(a, purpose, channel, at) == allowed(b, purpose, channel, at)


@settings(max_examples=300)
@given(st.lists(changes, max_size=40), st.floats(NOW - 2000, NOW + 2000))
def test_opt_in_is_allowed_exactly_when_the_latest_change_is_a_grant_in_force(history: list[Change], at: float) -> None:
    events = versioned(history)
    state = fold(events)
    objected = all(
        (last := latest(events, "direct_marketing", ch)) is not None and last.status in ("withdrawn", "revoked")
        for ch in CHANNELS
    )
    for purpose in ("direct_marketing", "third_party_marketing"):
        for channel in ("sms", "email"):
            last = latest(events, purpose, channel)
            in_force = (
                last is not None and last.status == "granted" and (last.valid_until is None or last.valid_until > at)
            )
            assert allowed(state, purpose, channel, at) == (in_force and not objected)


@settings(max_examples=300)
@given(st.lists(changes, max_size=40), st.floats(NOW - 2000, NOW + 2000))
def test_opt_out_is_blocked_exactly_when_objected(history: list[Change], at: float) -> None:
    events = versioned(history)
    state = fold(events)
    for channel in ("sms", "email"):
        last = latest(events, "existing_customer_offers", channel)
        refused = last is not None and last.status in ("withdrawn", "revoked")
        verdict = RULES.decide(state, CATALOG.purposes["existing_customer_offers"], channel, at, NO_REGISTERS)  # type: ignore[index]
        assert not verdict.allowed or not refused
        if refused:
            assert verdict.reasons == (Reason.OBJECTED,)


@settings(max_examples=200)
@given(st.lists(changes, max_size=40), st.floats(NOW - 2000, NOW + 2000), st.floats(0, 5000))
def test_a_blocked_opt_in_never_becomes_allowed_by_time_alone(history: list[Change], at: float, later: float) -> None:
    state = fold(versioned(history))
    for purpose in ("direct_marketing", "third_party_marketing"):
        for channel in ("sms", "email"):
            if not allowed(state, purpose, channel, at):
                assert not allowed(state, purpose, channel, at + later)


@settings(max_examples=200)
@given(st.lists(changes, max_size=40), st.floats(NOW - 2000, NOW + 2000))
def test_erased_is_always_blocked_and_service_messages_only_by_erasure(history: list[Change], at: float) -> None:
    state = fold(versioned(history))
    for channel in ("sms", "email", "push"):
        assert allowed(state, "service_delivery", channel, at)
    state.erased = True
    for purpose in (*PURPOSES, "service_delivery", "personalised_offers"):
        verdict = RULES.decide(state, CATALOG.purposes[purpose], "sms", at, NO_REGISTERS)  # type: ignore[index]
        assert verdict.reasons == (Reason.ERASED,)
