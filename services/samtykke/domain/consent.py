"""Consent lifecycle rules: validating a decision, applying it, lapse, retention, state at an instant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from .catalog import Purpose, PurposeCatalog
from .model import (
    ACTION_STATUS,
    ActorKind,
    Channel,
    ConsentAction,
    ConsentStatus,
    PurposeCode,
    Source,
    SubjectKind,
)

Instant = TypeVar("Instant", datetime, float)

# A clock skew allowance: a decision stamped a little ahead of our clock is not "in the future".
FUTURE_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """A broken rule and the request field it is about (e.g. `decisions[1].channel`)."""

    field: str
    rule: str


@dataclass(frozen=True, slots=True)
class Decision:
    purpose: str
    channel: Channel | None
    action: ConsentAction
    occurred_at: datetime | None  # None: when it is recorded

    def at(self, now: datetime) -> Decision:
        return self if self.occurred_at is not None else replace(self, occurred_at=now)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """The current state of one (subject, purpose, channel)."""

    purpose: PurposeCode
    channel: Channel | None
    status: ConsentStatus
    version: int
    occurred_at: datetime
    valid_until: datetime | None
    last_used_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.purpose, self.channel.value if self.channel else None)


def check_decision(
    catalog: PurposeCatalog,
    kind: SubjectKind,
    actor: ActorKind,
    decision: Decision,
    field: str,
    now: datetime,
    current: ConsentRecord | None,
) -> list[RuleViolation]:
    """Every rule a decision breaks, each naming its field; empty when it may be recorded."""
    purpose = catalog.get(decision.purpose)
    if purpose is None:
        return [RuleViolation(f"{field}.purpose", f"unknown purpose '{decision.purpose}'")]
    if not purpose.decidable:
        return [RuleViolation(f"{field}.purpose", f"'{purpose.code}' rests on {purpose.legal_basis}, not consent")]
    if not purpose.applies_to(kind):
        return [RuleViolation(f"{field}.purpose", f"'{purpose.code}' does not apply to a {kind.value}")]
    problems = _channel_rule(purpose, kind, decision.channel, f"{field}.channel")
    assert decision.occurred_at is not None, "resolve the decision's time with .at(now) first"
    if decision.occurred_at > now + FUTURE_TOLERANCE:
        problems.append(RuleViolation(f"{field}.occurred_at", "must not be in the future"))
    if current is not None and decision.occurred_at < current.occurred_at:
        problems.append(RuleViolation(f"{field}.occurred_at", "is older than the decision already recorded"))
    if kind is SubjectKind.BUSINESS and actor is ActorKind.SUBJECT:
        problems.append(RuleViolation("actor.kind", "a business's purposes are decided by a company_admin or agent"))
    if decision.action is ConsentAction.REVOKE and actor is ActorKind.SUBJECT:
        problems.append(RuleViolation(f"{field}.action", "a subject withdraws; revoke is for others"))
    return problems


def _channel_rule(purpose: Purpose, kind: SubjectKind, channel: Channel | None, field: str) -> list[RuleViolation]:
    if not purpose.per_channel:
        if channel is not None:
            return [RuleViolation(field, f"'{purpose.code}' has no channels: omit channel")]
        return []
    allowed = purpose.channels[kind]
    if channel is None:
        return [RuleViolation(field, f"'{purpose.code}' is per channel: one of {[c.value for c in allowed]}")]
    if channel not in allowed:
        return [RuleViolation(field, f"'{channel.value}' is not a channel of '{purpose.code}' for a {kind.value}")]
    return []


def lapse_deadline(purpose: Purpose, since: datetime) -> datetime | None:
    """When an unused grant lapses, counted from its grant or last use."""
    return None if purpose.lapse_days is None else since + timedelta(days=purpose.lapse_days)


def apply_decision(purpose: Purpose, current: ConsentRecord | None, decision: Decision) -> ConsentRecord:
    assert decision.occurred_at is not None, "resolve the decision's time with .at(now) first"
    status = ACTION_STATUS[decision.action]
    valid_until = lapse_deadline(purpose, decision.occurred_at) if status is ConsentStatus.GRANTED else None
    return ConsentRecord(
        purpose=purpose.code,
        channel=decision.channel,
        status=status,
        version=(current.version if current else 0) + 1,
        occurred_at=decision.occurred_at,
        valid_until=valid_until,
        last_used_at=current.last_used_at if current else None,
    )


def apply_usage(purpose: Purpose, current: ConsentRecord, used_at: datetime) -> ConsentRecord | None:
    """A reported use of a grant in force moves its lapse date; anything else changes nothing."""
    if status_at(current, used_at) is not ConsentStatus.GRANTED:
        return None
    if current.last_used_at is not None and used_at <= current.last_used_at:
        return None
    return replace(
        current,
        version=current.version + 1,
        occurred_at=max(current.occurred_at, used_at),
        valid_until=lapse_deadline(purpose, used_at),
        last_used_at=used_at,
    )


def expire(current: ConsentRecord) -> ConsentRecord:
    assert current.valid_until is not None
    return replace(
        current,
        status=ConsentStatus.EXPIRED,
        version=current.version + 1,
        occurred_at=current.valid_until,
        valid_until=None,
    )


def in_force(status: str, valid_until: Instant | None, at: Instant) -> bool:
    """THE rule: a grant permits use until its valid-until, whether or not the expiry event has
    arrived. Instants are datetimes, or epoch seconds where an index keeps floats."""
    return status == ConsentStatus.GRANTED and (valid_until is None or valid_until > at)


def status_at(record: ConsentRecord, at: datetime) -> ConsentStatus:
    """The status in force at `at`: a grant past its valid-until has lapsed, event or not."""
    if record.status is ConsentStatus.GRANTED and not in_force(record.status, record.valid_until, at):
        return ConsentStatus.EXPIRED
    return record.status


def documentation_deadline(purpose: Purpose, record: ConsentRecord) -> datetime | None:
    """When the record of a consent no longer in force may be purged (retention after last use)."""
    if record.status is ConsentStatus.GRANTED or purpose.retention_days is None:
        return None
    last = max(filter(None, (record.last_used_at, record.occurred_at)))
    return last + timedelta(days=purpose.retention_days)


def general_objection(direct_marketing: Purpose, kind: SubjectKind, records: Iterable[ConsentRecord]) -> bool:
    """Direct marketing refused on every channel the kind of subject has: the gate reads it as an
    objection to all marketing, opt-out purposes included (`SuppressionRules`)."""
    channels = direct_marketing.channels.get(kind, ())
    refused = {
        r.channel
        for r in records
        if r.purpose == direct_marketing.code and r.status in (ConsentStatus.WITHDRAWN, ConsentStatus.REVOKED)
    }
    return bool(channels) and all(channel in refused for channel in channels)


def state_at(history: Iterable[ConsentRecord], at: datetime) -> dict[tuple[str, str | None], ConsentRecord]:
    """Fold a ledger (any order) into the state in force at `at`; lapse is applied at `at`."""
    latest: dict[tuple[str, str | None], ConsentRecord] = {}
    for record in history:
        if record.occurred_at > at:
            continue
        seen = latest.get(record.key)
        if seen is None or record.version > seen.version:
            latest[record.key] = record
    return {k: replace(r, status=status_at(r, at)) for k, r in latest.items()}


class Documented(Protocol):
    """A ledger row as the rules read it: the state it set and where the change came from."""

    @property
    def record(self) -> ConsentRecord: ...

    @property
    def source(self) -> Source: ...


Row = TypeVar("Row", bound=Documented)


def is_decision(row: Documented) -> bool:
    """Whether a row documents someone's decision. A usage report only moves the lapse date and a
    lapse is the clock's doing: after either, the decision in force is still the one before it."""
    return row.source is not Source.USAGE_REPORT and row.record.status is not ConsentStatus.EXPIRED


def latest_rows(
    history: Iterable[Row], at: datetime | None = None, *, decisions_only: bool = False
) -> dict[tuple[str, str | None], Row]:
    """Per key, the row of the highest version that occurred at or before `at` (any time when None):
    the row that set the state in force then, or with `decisions_only` the decision in force then."""
    latest: dict[tuple[str, str | None], Row] = {}
    for row in history:
        record = row.record
        if (at is not None and record.occurred_at > at) or (decisions_only and not is_decision(row)):
            continue
        seen = latest.get(record.key)
        if seen is None or record.version > seen.record.version:
            latest[record.key] = row
    return latest
