"""Identifiers change hands: who answers for a phone number or e-mail address at a given instant.

Telecom numbers are recycled after a quarantine and ported between operators, so one keyed hash
can belong to several subjects over time. Each subject's hold on it is an interval
[since, until) (until None while held). A check by the identifier at T asks every holding whose
interval, stretched by the quarantine after `until`, contains T:

- a holding still held answers with its subject's own decision;
- an ended holding blocks, with `erased` when its subject was erased and `released` otherwise,
  for the whole interval and the quarantine after it: a departed person's block covers the
  identifier while they held it, and a new holder's consent cannot reach them in the meantime;
- several holdings at once (a new holder inside a predecessor's quarantine) combine fail-closed:
  allowed only when every one allows;
- no holding at T: `unknown_subject`.

Times are epoch seconds, as in `suppression`: the index evaluates this on the send path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import NamedTuple

from .model import SubjectId
from .suppression import UNKNOWN, Reason, Verdict, combine

DAY = 86_400.0
DEFAULT_QUARANTINE_DAYS = 90  # the operators' usual wait before a number is handed to a new subscriber


class ReleaseReason(StrEnum):
    """Why a subject stopped holding an identifier (kept with the ended holding)."""

    SUBSCRIPTION_ENDED = "subscription_ended"
    PORTED_OUT = "ported_out"
    REPLACED = "replaced"  # the subject gave another number or address instead
    ERASED = "erased"


class Holding(NamedTuple):
    """One subject's hold on one identifier: a tuple, since the index keeps millions of them."""

    subject_id: SubjectId
    since: float
    until: float | None  # None while held


RELEASED = Verdict(False, (Reason.RELEASED,))
ERASED_HOLDER = Verdict(False, (Reason.ERASED,))


def covers(holding: Holding, at: float, quarantine: float) -> bool:
    """Does this holding answer for the identifier at `at`: from its start to the end of its quarantine."""
    return holding.since <= at and (holding.until is None or at < holding.until + quarantine)


def holders_at(holdings: Iterable[Holding], at: float, quarantine: float) -> tuple[Holding, ...]:
    return tuple(h for h in holdings if covers(h, at, quarantine))


def resolve(
    holdings: Iterable[Holding],
    at: float,
    quarantine: float,
    decide: Callable[[SubjectId], Verdict],
    erased: Callable[[SubjectId], bool],
) -> tuple[Verdict, tuple[SubjectId, ...]]:
    """The verdict for a check by the identifier at `at`, and the subjects it came from.

    `decide` is the subject's own verdict (used for a holding still held); `erased` says whether the
    subject was erased: its block says so, whether or not its holding has ended."""
    found = holders_at(holdings, at, quarantine)
    if not found:
        return UNKNOWN, ()
    verdicts = [
        ERASED_HOLDER if erased(h.subject_id) else decide(h.subject_id) if h.until is None else RELEASED for h in found
    ]
    return combine(verdicts), tuple(dict.fromkeys(h.subject_id for h in found))


def place(holdings: tuple[Holding, ...], holding: Holding) -> tuple[Holding, ...]:
    """`holdings` with `holding` in it, replacing the subject's holding of the same start.

    An ended holding is final: a replayed older record saying it is still held does not reopen it.
    Kept sorted by (since, subject), so the answer does not depend on the order records arrived in."""
    same = next((h for h in holdings if h.subject_id == holding.subject_id and h.since == holding.since), None)
    if same is not None:
        if same.until is not None and (holding.until is None or holding.until >= same.until):
            return holdings
        holdings = tuple(h for h in holdings if h is not same)
    return tuple(sorted((*holdings, holding), key=lambda h: (h.since, h.subject_id)))


def end(holdings: tuple[Holding, ...], subject_id: SubjectId, at: float) -> tuple[Holding, ...]:
    """The subject's open holding ended at `at` (when it stopped showing the identifier as held)."""
    return tuple(h._replace(until=at) if h.subject_id == subject_id and h.until is None else h for h in holdings)
