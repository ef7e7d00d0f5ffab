"""What the consent service emits: its records as contract events, and a change as a response body."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from samtykke.domain.consent import ConsentRecord, Decision
from samtykke.domain.events import ConsentChanged, ReleasedIdentifier, SubjectChanged
from samtykke.domain.model import ActorKind, Source

from .ports import EndedHolding, SubjectRow


@dataclass(frozen=True, slots=True)
class DecisionBatch:
    decisions: list[Decision]
    source: Source
    actor_kind: ActorKind
    actor_ref: str | None
    notice_version: str | None
    evidence_ref: str | None
    correlation_id: str | None
    client_id: str | None = None  # the credential that sent the batch


def consent_changed(
    subject: SubjectRow,
    after: ConsentRecord,
    before: ConsentRecord | None,
    now: datetime,
    source: Source,
    actor: ActorKind,
    batch: DecisionBatch | None = None,
    event_id: str | None = None,
) -> ConsentChanged:
    """`event_id` None: a new random one (an import derives its own, so a re-run finds it)."""
    return ConsentChanged(
        event_id=event_id or str(uuid4()),
        subject_id=subject.subject_id,
        subject_kind=subject.kind.value,
        account_id=subject.account_id,
        country=subject.country,
        purpose=after.purpose,
        channel=after.channel.value if after.channel else None,
        status=after.status.value,
        previous_status=before.status.value if before else None,
        version=after.version,
        occurred_at=after.occurred_at,
        recorded_at=now,
        valid_until=after.valid_until,
        source=source.value,
        actor_kind=actor.value,
        notice_version=batch.notice_version if batch else None,
        evidence_ref=batch.evidence_ref if batch else None,
        correlation_id=batch.correlation_id if batch else None,
        last_used_at=after.last_used_at,
    )


def subject_changed(row: SubjectRow, at: datetime, ended: Sequence[EndedHolding] = ()) -> SubjectChanged:
    """The subject's record on the compacted topic: it carries every holding the subject ended, since
    compaction keeps only this latest record. An erased subject holds no phone or e-mail any more:
    its hashes are among the ended holdings, which keep it blocked by them for the quarantine."""
    phone = None if row.erased_at else row.phone_hash
    email = None if row.erased_at else row.email_hash
    return SubjectChanged(
        event_id=str(uuid4()),
        subject_id=row.subject_id,
        kind=row.kind.value,
        country=row.country,
        account_id=row.account_id,
        phone_hash=phone,
        email_hash=email,
        national_id_hash=row.national_id_hash,
        erased=row.erased_at is not None,
        version=row.version,
        occurred_at=at,
        # a subject's current phone and e-mail are held since it registered: nothing changes them later
        phone_since=row.created_at if phone else None,
        email_since=row.created_at if email else None,
        released=tuple(ReleasedIdentifier(h.kind.value, h.hash, h.since, h.until, h.reason) for h in ended),
    )


def change_view(change: ConsentChanged) -> dict[str, Any]:
    """A change as the API shows it (and as an idempotent retry is answered from the store)."""
    return {
        "event_id": change.event_id,
        "purpose": change.purpose,
        "channel": change.channel,
        "status": change.status,
        "previous_status": change.previous_status,
        "version": change.version,
        "occurred_at": change.occurred_at.isoformat(),
        "valid_until": change.valid_until.isoformat() if change.valid_until else None,
    }
