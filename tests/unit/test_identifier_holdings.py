"""Laws of who answers for a recycled or ported identifier (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from samtykke.domain.holdings import DAY, Holding, holders_at, place, resolve
from samtykke.domain.model import SubjectId
from samtykke.domain.suppression import ALLOWED, ERASED, Reason, Verdict

Q = 90 * DAY
T0 = 1_800_000_000.0
SUBJECTS = [SubjectId(f"s{n}") for n in range(4)]
OBJECTED = Verdict(False, (Reason.WITHDRAWN,))

times = st.floats(T0 - 400 * DAY, T0 + 400 * DAY, allow_nan=False)


@st.composite
def holdings(draw: st.DrawFn) -> list[Holding]:
    """Up to four subjects, each holding the identifier once, some of them no longer."""
    out = []
    for subject_id in draw(st.lists(st.sampled_from(SUBJECTS), unique=True, max_size=4)):
        since = draw(times)
        until = draw(st.one_of(st.none(), st.floats(0, 200 * DAY).map(lambda d, s=since: s + d)))
        out.append(Holding(subject_id, since, until))
    return out


verdicts = st.dictionaries(st.sampled_from(SUBJECTS), st.sampled_from([ALLOWED, OBJECTED]))
erased_sets = st.frozensets(st.sampled_from(SUBJECTS))


def answer(
    held: list[Holding], at: float, own: dict[SubjectId, Verdict], erased: frozenset[SubjectId]
) -> tuple[Verdict, tuple[SubjectId, ...]]:
    return resolve(held, at, Q, lambda s: own.get(s, ALLOWED), erased.__contains__)


@given(holdings(), times, verdicts, erased_sets)
def test_never_allowed_while_a_departed_holder_or_its_quarantine_covers_the_instant(
    held: list[Holding], at: float, own: dict[SubjectId, Verdict], erased: frozenset[SubjectId]
) -> None:
    departed = [h for h in held if h.until is not None and h.since <= at < h.until + Q]
    verdict, _ = answer(held, at, own, erased)
    if departed:
        assert not verdict.allowed
        expected = {Reason.ERASED if h.subject_id in erased else Reason.RELEASED for h in departed}
        assert expected <= set(verdict.reasons)


@given(holdings(), times, verdicts, erased_sets)
def test_outside_every_quarantine_the_holders_own_decisions_govern(
    held: list[Holding], at: float, own: dict[SubjectId, Verdict], erased: frozenset[SubjectId]
) -> None:
    active = holders_at(held, at, Q)
    verdict, subjects = answer(held, at, own, erased)
    assert subjects == tuple(h.subject_id for h in active)
    if active and all(h.until is None for h in active):
        decisions = [ERASED if h.subject_id in erased else own.get(h.subject_id, ALLOWED) for h in active]
        assert verdict.allowed == all(d.allowed for d in decisions)
        assert set(verdict.reasons) == {r for d in decisions for r in d.reasons}


@given(times, st.floats(1, 300 * DAY), st.floats(0, 300 * DAY), st.floats(0, 300 * DAY))
def test_a_new_holder_governs_after_the_predecessors_quarantine_and_not_before(
    since: float, held_for: float, gap: float, later: float
) -> None:
    a, b = SUBJECTS[0], SUBJECTS[1]
    erased_at = since + held_for
    held = [Holding(a, since, erased_at), Holding(b, erased_at + gap, None)]
    for own in (ALLOWED, OBJECTED):
        at = max(erased_at + Q, erased_at + gap) + later
        assert answer(held, at, {b: own}, frozenset({a})) == (own, (b,))
        inside = erased_at + min(gap, Q - 1)
        verdict, _ = answer(held, inside, {b: ALLOWED}, frozenset({a}))
        assert not verdict.allowed and Reason.ERASED in verdict.reasons


@given(holdings(), times, erased_sets)
def test_an_erased_holder_without_successor_is_never_allowed(
    held: list[Holding], at: float, erased: frozenset[SubjectId]
) -> None:
    mine = [h for h in held if h.subject_id in erased]
    verdict, _ = answer(mine, at, {}, erased | {h.subject_id for h in mine})
    assert not verdict.allowed
    assert verdict.reasons in ((Reason.ERASED,), (Reason.UNKNOWN_SUBJECT,))


@given(holdings(), times)
def test_nobody_holding_it_at_the_instant_is_an_unknown_subject(held: list[Holding], at: float) -> None:
    if not holders_at(held, at, Q):
        assert answer(held, at, {}, frozenset()) == (Verdict(False, (Reason.UNKNOWN_SUBJECT,)), ())


@given(st.lists(holdings(), min_size=1, max_size=3), st.randoms(use_true_random=False), times)
def test_the_order_records_arrive_in_does_not_change_the_answer(
    versions: list[list[Holding]], random: object, at: float
) -> None:
    """A subject's holding may arrive open and later closed (or replayed out of order): the
    earliest end seen wins, and the fold is the same in any order."""
    arrivals = [h for held in versions for h in held]
    shuffled = list(arrivals)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    folded: tuple[Holding, ...] = ()
    refolded: tuple[Holding, ...] = ()
    for holding in arrivals:
        folded = place(folded, holding)
    for holding in shuffled:
        refolded = place(refolded, holding)
    assert folded == refolded
    assert answer(list(folded), at, {}, frozenset()) == answer(list(refolded), at, {}, frozenset())


def test_an_ended_holding_is_not_reopened_by_an_older_record() -> None:
    a = SUBJECTS[0]
    ended = place((), Holding(a, T0, T0 + DAY))
    assert place(ended, Holding(a, T0, None)) == ended
    assert place(ended, Holding(a, T0, T0 + 2 * DAY)) == ended
    assert place(ended, Holding(a, T0, T0 + 0.5 * DAY)) == (Holding(a, T0, T0 + 0.5 * DAY),)
