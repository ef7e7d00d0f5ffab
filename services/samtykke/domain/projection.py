"""What each downstream domain's rows are, computed from the contract events.

The projectors apply these rules one batch at a time (version-guarded); the tests fold a whole
ledger through the same rules and compare (projection = recomputation). The laws: the highest
version of a (subject, purpose, channel) wins, a replayed or stale event changes nothing, and
nothing here depends on the order of the two topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from .catalog import PurposeCatalog
from .consent import in_force
from .events import ConsentChanged, SubjectChanged
from .identifiers import identifier_hash
from .model import Channel, ConsentStatus, Country, Mechanism, SubjectId, SubjectKind

NO_CHANNEL = ""  # tables key purposes without channels by '' (a primary key cannot hold NULL)
ChangeKey = tuple[str, str, str]  # subject id (or pseudonym), purpose, channel
DailyKey = tuple[date, str, str, str]  # day, purpose, status, country

_STATUSES = {s.value for s in ConsentStatus}
_KINDS = {k.value for k in SubjectKind}
_COUNTRIES = {c.value for c in Country}
_CHANNELS = {c.value for c in Channel}


def change_key(change: ConsentChanged) -> ChangeKey:
    return (change.subject_id, change.purpose, change.channel or NO_CHANNEL)


def check_change(catalog: PurposeCatalog, change: ConsentChanged) -> str | None:
    """Why a projector must not apply this event (it goes to the dead-letter queue), or None."""
    purpose = catalog.get(change.purpose)
    if purpose is None or not purpose.decidable:
        return f"unknown consent purpose {change.purpose!r}"
    if change.status not in _STATUSES:
        return f"unknown status {change.status!r}"
    if change.previous_status is not None and change.previous_status not in _STATUSES:
        return f"unknown previous_status {change.previous_status!r}"
    if change.channel is not None and change.channel not in _CHANNELS:
        return f"unknown channel {change.channel!r}"
    if purpose.per_channel != (change.channel is not None):
        return f"channel {change.channel!r} does not fit purpose {change.purpose!r}"
    return _check_subject_fields(change.subject_kind, change.country, change.version)


def check_subject(subject: SubjectChanged) -> str | None:
    return _check_subject_fields(subject.kind, subject.country, subject.version)


def _check_subject_fields(kind: str, country: str, version: int) -> str | None:
    if kind not in _KINDS:
        return f"unknown subject kind {kind!r}"
    if country not in _COUNTRIES:
        return f"unknown country {country!r}"
    return None if version >= 1 else f"version {version} is not positive"


def guarded(changes: Iterable[ConsentChanged], stored: Mapping[ChangeKey, int]) -> list[ConsentChanged]:
    """The events a version-guarded upsert applies, in order: each must beat every version before it."""
    seen = dict(stored)
    applied = []
    for change in changes:
        key = change_key(change)
        if change.version > seen.get(key, 0):
            seen[key] = change.version
            applied.append(change)
    return applied


def latest_changes(changes: Iterable[ConsentChanged]) -> dict[ChangeKey, ConsentChanged]:
    latest: dict[ChangeKey, ConsentChanged] = {}
    for change in changes:
        seen = latest.get(change_key(change))
        if seen is None or change.version > seen.version:
            latest[change_key(change)] = change
    return latest


def latest_subjects(subjects: Iterable[SubjectChanged]) -> dict[str, SubjectChanged]:
    latest: dict[str, SubjectChanged] = {}
    for subject in subjects:
        seen = latest.get(subject.subject_id)
        if seen is None or subject.version > seen.version:
            latest[subject.subject_id] = subject
    return latest


# --- marketing -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MarketingConsent:
    subject_id: SubjectId
    purpose: str
    channel: str
    mechanism: str
    status: str
    in_force: bool  # as of the change; the view also checks valid_until against today
    valid_until: datetime | None
    lapse_date: date | None  # when an unused grant lapses, or when an expired one did
    country: str
    kind: str
    account_id: str | None
    version: int
    occurred_at: datetime


def marketing_consent(catalog: PurposeCatalog, change: ConsentChanged) -> MarketingConsent | None:
    """The marketing row of a change; None for purposes marketing does not use."""
    purpose = catalog.get(change.purpose)
    if purpose is None or not purpose.marketing:
        return None
    if change.status == ConsentStatus.EXPIRED:
        lapse: date | None = change.occurred_at.date()
    else:
        lapse = change.valid_until.date() if change.valid_until else None
    return MarketingConsent(
        subject_id=SubjectId(change.subject_id),
        purpose=change.purpose,
        channel=change.channel or NO_CHANNEL,
        mechanism=purpose.mechanism.value,
        status=change.status,
        in_force=in_force(change.status, change.valid_until, change.occurred_at),
        valid_until=change.valid_until,
        lapse_date=lapse,
        country=change.country,
        kind=change.subject_kind,
        account_id=change.account_id,
        version=change.version,
        occurred_at=change.occurred_at,
    )


def marketable(
    catalog: PurposeCatalog,
    consents: Iterable[MarketingConsent],
    subjects: Mapping[str, SubjectChanged],
    at: datetime,
) -> set[ChangeKey]:
    """Who may be marketed to at `at`: an opt-in grant in force, or an opt-out purpose not objected
    to (every known customer of a kind it applies to, on each of its channels); never the erased."""
    erased = {s.subject_id for s in subjects.values() if s.erased}
    rows: dict[ChangeKey, MarketingConsent] = {(c.subject_id, c.purpose, c.channel): c for c in consents}
    allowed: set[ChangeKey] = {
        k for k, c in rows.items() if c.mechanism == Mechanism.OPT_IN and in_force(c.status, c.valid_until, at)
    }
    for purpose in catalog.purposes.values():
        if not purpose.marketing or purpose.mechanism is not Mechanism.OPT_OUT:
            continue
        for subject in subjects.values():
            for channel in purpose.channels.get(SubjectKind(subject.kind), ()):
                key = (subject.subject_id, purpose.code, channel.value)
                if key not in rows or rows[key].status == ConsentStatus.GRANTED:
                    allowed.add(key)
    return {key for key in allowed if key[0] not in erased}


# --- analytics -------------------------------------------------------------------------------
def pseudonym(key: bytes, subject_id: str) -> str:
    """Keyed hash of a subject id: stable for joins, useless without the analytics key."""
    return identifier_hash(key, "subject", subject_id)


def account_pseudonym(key: bytes, account_id: str | None) -> str | None:
    return None if account_id is None else identifier_hash(key, "account", account_id)


def daily_deltas(changes: Iterable[ConsentChanged]) -> dict[DailyKey, tuple[int, int]]:
    """(entered, left) per day × purpose × status × country; a use of a grant moves no status."""
    deltas: dict[DailyKey, tuple[int, int]] = {}
    for c in changes:
        if c.status == c.previous_status:
            continue
        day = c.occurred_at.date()
        entered, left = deltas.get((day, c.purpose, c.status, c.country), (0, 0))
        deltas[(day, c.purpose, c.status, c.country)] = (entered + 1, left)
        if c.previous_status is not None:
            entered, left = deltas.get((day, c.purpose, c.previous_status, c.country), (0, 0))
            deltas[(day, c.purpose, c.previous_status, c.country)] = (entered, left + 1)
    return deltas


def traffic_data_use(
    catalog: PurposeCatalog,
    subjects: Mapping[str, SubjectChanged],
    latest: Mapping[ChangeKey, ConsentChanged],
    at: datetime,
) -> set[tuple[str, str, str]]:
    """(subject, purpose, decided_by) for each traffic-data purpose a subject's data may be used for:
    its own grant, or for an employee the grant of a business with the same account."""
    codes = {p.code for p in catalog.traffic_data_purposes()}
    live = {s.subject_id: s for s in subjects.values() if not s.erased}
    granted = {
        (c.subject_id, c.purpose)
        for c in latest.values()
        if c.purpose in codes and c.subject_id in live and in_force(c.status, c.valid_until, at)
    }
    by_account = {
        (live[subject].account_id, purpose)
        for subject, purpose in granted
        if live[subject].kind == SubjectKind.BUSINESS and live[subject].account_id is not None
    }
    uses = {(subject, purpose, "self") for subject, purpose in granted if live[subject].kind != SubjectKind.EMPLOYEE}
    for subject in live.values():
        if subject.kind == SubjectKind.EMPLOYEE:
            uses |= {(subject.subject_id, p, "company") for p in codes if (subject.account_id, p) in by_account}
    return uses


# --- customer service ------------------------------------------------------------------------
def timeline_evidence(change: ConsentChanged, erased: bool) -> bool:
    """Whether the ledger holds evidence for this change: erasure drops it there, so not after it."""
    return (change.evidence_on_file or change.evidence_ref is not None) and not erased
