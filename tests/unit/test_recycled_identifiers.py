"""The index folds `consent.subjects` records into holdings: a recycled number answers for whoever held
it at the check time (pure: an in-memory index fed records by hand, no sockets)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged, ReleasedIdentifier, SubjectChanged
from samtykke.domain.holdings import DAY
from samtykke.domain.model import PurposeCode, SubjectId
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import SuppressionRules
from samtykke.suppression.index import SuppressionIndex

RULES = SuppressionRules(load_catalog())
PLAN = RULES.plan(RULES.catalog.purposes[PurposeCode("direct_marketing")], "sms")
P = "phone-hash-p"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUARANTINE = 90


def index() -> SuppressionIndex:
    return SuppressionIndex(RULES, RegisterBook({}), QUARANTINE)


def record(
    subject: str,
    version: int,
    at: datetime,
    phone: str | None = None,
    since: datetime | None = None,
    released: tuple[ReleasedIdentifier, ...] = (),
    erased: bool = False,
) -> SubjectChanged:
    return SubjectChanged(
        f"e-{subject}-{version}", subject, "consumer", "DK", None, phone, None, None, erased, version, at,
        phone_since=since, released=released,
    )  # fmt: skip


def grant(subject: str) -> ConsentChanged:
    return ConsentChanged(
        f"g-{subject}", subject, "consumer", None, "DK", "direct_marketing", "sms", "granted", None, 1, T0, T0, None,
        "self_service", "subject", None, None, None,
    )  # fmt: skip


def at(moment: datetime) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    return at_in(STORY_INDEX, moment)


def at_in(idx: SuppressionIndex, moment: datetime) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    verdict, holders = idx.decide_hash(P, PLAN, moment.timestamp())
    return verdict.allowed, tuple(r.value for r in verdict.reasons), tuple(holders)


# A holds P from T0 and is erased at T0 + 30 days; B registers P at T0 + 40 days and grants SMS.
ERASED_AT, B_SINCE = T0 + timedelta(days=30), T0 + timedelta(days=40)
A_HELD = ReleasedIdentifier("phone", P, T0, ERASED_AT, "erased")
STORY: list[SubjectChanged | ConsentChanged] = [
    record("a", 1, T0, P, T0),
    grant("a"),
    record("a", 2, ERASED_AT, released=(A_HELD,), erased=True),
    record("b", 1, B_SINCE, P, B_SINCE),
    grant("b"),
]


def fold(events: Sequence[SubjectChanged | ConsentChanged]) -> SuppressionIndex:
    idx = index()
    for event in events:
        if isinstance(event, SubjectChanged):
            idx.apply_subject(event, time.time())
        else:
            idx.apply_consent(event, time.time())
    return idx


STORY_INDEX = fold(STORY)


def test_a_recycled_number_answers_for_whoever_held_it_then() -> None:
    assert at(T0 - timedelta(days=1)) == (False, ("unknown_subject",), ())
    assert at(T0 + timedelta(days=10)) == (False, ("erased",), ("a",))
    assert at(B_SINCE + timedelta(days=1)) == (False, ("erased",), ("a", "b"))
    after = ERASED_AT + timedelta(days=QUARANTINE)
    assert at(after - timedelta(seconds=1)) == (False, ("erased",), ("a", "b"))
    assert at(after) == (True, (), ("b",))
    assert STORY_INDEX.decide(SubjectId("b"), PLAN, B_SINCE.timestamp()).allowed


def test_a_released_number_blocks_as_released_then_its_next_holder_governs() -> None:
    ported = T0 + timedelta(days=5)
    idx = fold(
        [
            record("a", 1, T0, P, T0),
            grant("a"),
            record("a", 2, ported, released=(ReleasedIdentifier("phone", P, T0, ported, "ported_out"),)),
            record("b", 1, B_SINCE, P, B_SINCE),
            grant("b"),
        ]
    )
    assert at_in(idx, ported - timedelta(days=1)) == (False, ("released",), ("a",))
    assert at_in(idx, B_SINCE) == (False, ("released",), ("a", "b"))
    assert at_in(idx, ported + timedelta(days=QUARANTINE)) == (True, (), ("b",))
    assert idx.decide(SubjectId("a"), PLAN, B_SINCE.timestamp()).allowed  # A itself, by id
    assert idx.subjects[SubjectId("a")].phone_hash is None


def test_an_erased_subjects_record_from_before_v2_holds_until_its_erasure() -> None:
    idx = fold([record("a", 2, ERASED_AT, P, erased=True), record("b", 1, B_SINCE, P, B_SINCE), grant("b")])
    assert at_in(idx, T0) == (False, ("erased",), ("a",))
    assert at_in(idx, ERASED_AT + timedelta(days=QUARANTINE)) == (True, (), ("b",))


def test_a_replaced_phone_without_a_release_record_ends_when_the_record_stops_naming_it() -> None:
    changed = T0 + timedelta(days=3)
    idx = fold([record("a", 1, T0, P, T0), record("a", 2, changed, "other-hash", changed)])
    assert at_in(idx, changed + timedelta(days=1)) == (False, ("released",), ("a",))
    assert idx.current_holders("other-hash") == ("a",) and idx.current_holders(P) == ()


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(STORY))), st.floats(-10 * DAY, 200 * DAY))
def test_records_of_different_subjects_may_arrive_in_any_order(order: list[int], offset: float) -> None:
    """Each subject's own records stay in order (one partition); between subjects anything goes."""
    shuffled = sorted(range(len(STORY)), key=lambda i: (order.index(i), i))
    by_subject: dict[str, list[int]] = {}
    for i in shuffled:
        by_subject.setdefault(STORY[i].subject_id, []).append(i)
    queues = {s: sorted(ids) for s, ids in by_subject.items()}
    arrival = [queues[STORY[i].subject_id].pop(0) for i in shuffled]
    moment = T0 + timedelta(seconds=offset)
    assert at_in(fold([STORY[i] for i in arrival]), moment) == at(moment)
