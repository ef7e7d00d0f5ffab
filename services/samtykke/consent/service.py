"""Use cases of the consent service. Each runs in one transaction and writes its outbox rows there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg

from samtykke.adapters.vault import IdentifierVault
from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent import (
    ConsentRecord,
    Decision,
    RuleViolation,
    apply_decision,
    apply_usage,
    check_decision,
    state_at,
)
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.identifiers import (
    InvalidIdentifier,
    identifier_hash,
    normalise_email,
    normalise_national_id,
    normalise_phone,
)
from samtykke.domain.model import ActorKind, Channel, ConsentStatus, Country, PurposeCode, Source, SubjectKind

from . import store
from .errors import Conflict, RulesBroken, SubjectNotFound
from .metrics import ConsentMetrics


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewSubject:
    kind: SubjectKind
    country: Country
    account_id: str | None
    phone: str | None
    email: str | None
    national_id: str | None


@dataclass(frozen=True, slots=True)
class DecisionBatch:
    decisions: list[Decision]
    source: Source
    actor_kind: ActorKind
    actor_ref: str | None
    notice_version: str | None
    evidence_ref: str | None
    correlation_id: str | None


class ConsentService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: PurposeCatalog,
        vault: IdentifierVault,
        hash_key: bytes,
        topic_changes: str,
        topic_subjects: str,
        metrics: ConsentMetrics,
    ) -> None:
        self.pool = pool
        self.catalog = catalog
        self._vault = vault
        self._hash_key = hash_key
        self._changes = topic_changes
        self._subjects = topic_subjects
        self._metrics = metrics

    # -- subjects ---------------------------------------------------------------
    def hash_identifier(self, kind: str, value: str) -> str:
        return identifier_hash(self._hash_key, kind, value)

    def normalise(self, new: NewSubject) -> tuple[str | None, str | None, str | None]:
        problems, values = [], []
        for field, raw, normalise in (
            ("phone", new.phone, lambda v: normalise_phone(v, new.country)),
            ("email", new.email, normalise_email),
            ("national_id", new.national_id, lambda v: normalise_national_id(v, new.country)),
        ):
            try:
                values.append(None if raw is None else normalise(raw))
            except InvalidIdentifier as exc:
                problems.append(RuleViolation(f"identifiers.{field}", str(exc)))
                values.append(None)
        if new.kind in (SubjectKind.EMPLOYEE, SubjectKind.BUSINESS) and not new.account_id:
            problems.append(RuleViolation("account_id", f"a {new.kind.value} belongs to a business account"))
        if problems:
            raise RulesBroken(problems)
        return values[0], values[1], values[2]

    async def register_subject(self, new: NewSubject) -> SubjectRow:
        phone, email, national_id = self.normalise(new)
        now = utcnow()
        national_hash = self.hash_identifier(f"national_id:{new.country}", national_id) if national_id else None
        row = store.SubjectRow(
            subject_id=str(uuid4()),
            kind=new.kind,
            country=new.country.value,
            account_id=new.account_id,
            phone_hash=self.hash_identifier("phone", phone) if phone else None,
            email_hash=self.hash_identifier("email", email) if email else None,
            national_id_hash=national_hash,
            phone_enc=self._vault.seal(phone),
            email_enc=self._vault.seal(email),
            national_id_enc=self._vault.seal(national_id),
            version=1,
            created_at=now,
            updated_at=now,
            erased_at=None,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            if national_hash and (existing := await store.subject_by_national_id(conn, national_hash)):
                raise Conflict("a subject with this national id is already registered", existing)
            await store.insert_subject(conn, row)
            await store.enqueue_subject(conn, self._subjects, self._subject_event(row, now))
        return row

    @staticmethod
    def _subject_event(row: SubjectRow, at: datetime) -> SubjectChanged:
        return SubjectChanged(
            event_id=str(uuid4()),
            subject_id=row.subject_id,
            kind=row.kind.value,
            country=row.country,
            account_id=row.account_id,
            phone_hash=row.phone_hash,
            email_hash=row.email_hash,
            national_id_hash=row.national_id_hash,
            erased=row.erased_at is not None,
            version=row.version,
            occurred_at=at,
        )

    async def subject(self, subject_id: str) -> SubjectRow:
        async with self.pool.acquire() as conn:
            row = await store.get_subject(conn, subject_id)
        if row is None:
            raise SubjectNotFound(subject_id)
        return row

    def reveal(self, row: SubjectRow) -> dict[str, str | None]:
        """Clear identifiers: only for the admin scope and the subject's access export."""
        return {
            "phone": self._vault.open(row.phone_enc),
            "email": self._vault.open(row.email_enc),
            "national_id": self._vault.open(row.national_id_enc),
        }

    async def find_subjects(self, column: str, kind: str, value: str) -> list[str]:
        async with self.pool.acquire() as conn:
            return await store.find_subjects(conn, column, self.hash_identifier(kind, value))

    async def erase(self, subject_id: str) -> SubjectRow:
        now = utcnow()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.get_subject(conn, subject_id, lock=True)
            if row is None:
                raise SubjectNotFound(subject_id)
            if row.erased_at is None:
                await store.erase_subject(conn, subject_id, now)
                row = await store.get_subject(conn, subject_id)
                assert row is not None
                await store.enqueue_subject(conn, self._subjects, self._subject_event(row, now))
        return row

    # -- consents ---------------------------------------------------------------
    async def record(
        self, subject_id: str, batch: DecisionBatch, idempotency_key: str | None, fingerprint: str = ""
    ) -> dict[str, Any]:
        """Record a batch atomically. `fingerprint` identifies the request as sent, so a retry
        under the same Idempotency-Key is recognised even though defaults (now) differ."""
        async with self.pool.acquire() as conn, conn.transaction():
            subject = await self._lock_live_subject(conn, subject_id)
            if idempotency_key:
                prior = await store.idempotent_response(conn, idempotency_key)
                if prior is not None:
                    if prior["request_hash"] != fingerprint or str(prior["subject_id"]) != subject_id:
                        raise RulesBroken(
                            [RuleViolation("Idempotency-Key", "was already used for a different request")]
                        )
                    return dict(prior["response"]) | {"replayed": True}
            current = await store.current_consents(conn, subject_id)
            changes = self._decide(subject, current, batch)
            await store.save_changes(conn, changes, batch.actor_ref, self._changes)
            response = {
                "subject_id": subject_id,
                "changes": [_change_view(c) for c in changes],
                "replayed": False,
            }
            if idempotency_key:
                await store.remember_response(conn, idempotency_key, subject_id, fingerprint, response)
        self._metrics.count_changes(changes)
        return response

    async def _lock_live_subject(self, conn: asyncpg.Connection, subject_id: str) -> SubjectRow:
        subject = await store.get_subject(conn, subject_id, lock=True)
        if subject is None:
            raise SubjectNotFound(subject_id)
        if subject.erased_at is not None:
            raise Conflict("the subject is erased; no consent can be recorded")
        return subject

    def _decide(
        self, subject: SubjectRow, current: dict[tuple[str, str | None], ConsentRecord], batch: DecisionBatch
    ) -> list[ConsentChanged]:
        now = utcnow()
        working = dict(current)
        problems: list[RuleViolation] = []
        changes: list[ConsentChanged] = []
        for i, decision in enumerate(d.at(now) for d in batch.decisions):
            key = (decision.purpose, decision.channel.value if decision.channel else None)
            before = working.get(key)
            broken = check_decision(
                self.catalog, subject.kind, batch.actor_kind, decision, f"decisions[{i}]", now, before
            )
            if broken:
                problems += broken
                continue
            purpose = self.catalog.purposes[PurposeCode(decision.purpose)]
            after = working[key] = apply_decision(purpose, before, decision)
            changes.append(self.change_event(subject, after, before, now, batch.source, batch.actor_kind, batch))
        if problems:
            raise RulesBroken(problems)
        return changes

    @staticmethod
    def change_event(
        subject: SubjectRow,
        after: ConsentRecord,
        before: ConsentRecord | None,
        now: datetime,
        source: Source,
        actor: ActorKind,
        batch: DecisionBatch | None = None,
    ) -> ConsentChanged:
        return ConsentChanged(
            event_id=str(uuid4()),
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

    async def report_usage(
        self, subject_id: str, purpose_code: str, channel: Channel | None, used_at: datetime
    ) -> dict[str, Any]:
        purpose = self.catalog.get(purpose_code)
        if purpose is None or not purpose.decidable:
            raise RulesBroken([RuleViolation("purpose", f"unknown consent purpose '{purpose_code}'")])
        if used_at > utcnow():
            raise RulesBroken([RuleViolation("used_at", "must not be in the future")])
        async with self.pool.acquire() as conn, conn.transaction():
            subject = await self._lock_live_subject(conn, subject_id)
            current = (await store.current_consents(conn, subject_id)).get(
                (purpose_code, channel.value if channel else None)
            )
            updated = apply_usage(purpose, current, used_at) if current else None
            if updated is None:
                raise Conflict("no grant in force for that purpose and channel at used_at")
            change = self.change_event(subject, updated, current, utcnow(), Source.USAGE_REPORT, ActorKind.SYSTEM)
            await store.save_changes(conn, [change], None, self._changes)
        self._metrics.count_changes([change])
        return _change_view(change)

    async def current(self, subject_id: str, at: datetime | None) -> list[dict[str, Any]]:
        await self.subject(subject_id)
        async with self.pool.acquire() as conn:
            if at is None:
                return await store.current_rows(conn, subject_id)
            history = await store.ledger(conn, subject_id)
        records = [
            ConsentRecord(
                purpose=PurposeCode(h["purpose"]),
                channel=Channel(h["channel"]) if h["channel"] else None,
                status=ConsentStatus(h["status"]),
                version=h["version"],
                occurred_at=h["occurred_at"],
                valid_until=h["valid_until"],
                last_used_at=h["last_used_at"],
            )
            for h in history
        ]
        state = state_at(records, at)
        return [
            {
                "purpose": r.purpose,
                "channel": r.channel.value if r.channel else None,
                "status": r.status.value,
                "version": r.version,
                "occurred_at": r.occurred_at,
                "valid_until": r.valid_until,
                "last_used_at": r.last_used_at,
            }
            for _, r in sorted(state.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ]

    async def history(self, subject_id: str) -> list[dict[str, Any]]:
        await self.subject(subject_id)
        async with self.pool.acquire() as conn:
            return await store.ledger(conn, subject_id)


def _change_view(change: ConsentChanged) -> dict[str, Any]:
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


SubjectRow = store.SubjectRow
