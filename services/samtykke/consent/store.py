"""The consent store on PostgreSQL (asyncpg): subjects, current consents, the ledger, the outbox, idempotency.

A unit of work is one connection in one transaction, so a decision, its ledger row and its outbox
row always commit together. Driver errors that mean "already stored" become `AlreadyStored` here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Any
from uuid import UUID

import asyncpg

from samtykke.adapters.postgres import apply_schema
from samtykke.domain.consent import ConsentRecord
from samtykke.domain.consent_keys import consent_key
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import ActorKind, Channel, ConsentStatus, PurposeCode, Source, SubjectKind

from .errors import SubjectNotFound
from .ports import (
    OUTBOX_CONSENT,
    OUTBOX_SUBJECT,
    AlreadyStored,
    ConsentUnitOfWork,
    CurrentConsent,
    EndedHolding,
    IdentifierKind,
    LedgerEntry,
    StoredResponse,
    SubjectRow,
)
from .store_outbox import PostgresOutbox
from .store_sql import (
    CURRENT_COLUMNS,
    DOCUMENTED_WITHDRAWALS,
    DOCUMENTED_WITHDRAWALS_AFTER,
    ERASE_SUBJECT,
    FIND_SUBJECTS,
    HOLDING_COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_TYPES,
    LOCK_SUBJECT_AT,
    PURGE_DOCUMENTATION,
    RELEASE_IDENTIFIERS,
    SAVE_CHANGES,
    SUBJECT_COLUMNS,
)

__all__ = ["OUTBOX_CONSENT", "OUTBOX_SUBJECT", "PostgresConsentStore", "create_schema"]

NATIONAL_ID_INDEX = "subjects_national_id_hash"
SCHEMA_LOCK = 0x5A_4D_54_00


async def create_schema(pool: asyncpg.Pool) -> None:
    """Apply `schema.sql` (idempotent) under an advisory lock, so replicas starting together do not race."""
    sql = resources.files(__package__).joinpath("schema.sql").read_text("utf-8")
    await apply_schema(pool, sql, SCHEMA_LOCK)


def _subject(row: asyncpg.Record | dict[str, Any]) -> SubjectRow:
    values = dict(row)
    values["subject_id"] = str(values["subject_id"])
    values["kind"] = SubjectKind(values["kind"])
    return SubjectRow(**values)


def _channel(stored: str) -> Channel | None:
    return Channel(stored) if stored else None  # '' stands for "no channel" in a key column


def _current(row: asyncpg.Record) -> CurrentConsent:
    return CurrentConsent(
        subject_id=str(row["subject_id"]),
        record=ConsentRecord(
            purpose=PurposeCode(row["purpose"]),
            channel=_channel(row["channel"]),
            status=ConsentStatus(row["status"]),
            version=row["version"],
            occurred_at=row["occurred_at"],
            valid_until=row["valid_until"],
            last_used_at=row["last_used_at"],
        ),
        recorded_at=row["recorded_at"],
        notice_version=row["notice_version"],
        source=Source(row["source"]),
    )


def _ledger_entry(row: asyncpg.Record) -> LedgerEntry:
    previous = row["previous_status"]
    return LedgerEntry(
        seq=row["seq"],
        event_id=str(row["event_id"]),
        subject_id=str(row["subject_id"]),
        purpose=PurposeCode(row["purpose"]),
        channel=_channel(row["channel"]),
        status=ConsentStatus(row["status"]),
        previous_status=ConsentStatus(previous) if previous else None,
        version=row["version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        valid_until=row["valid_until"],
        last_used_at=row["last_used_at"],
        source=Source(row["source"]),
        actor_kind=ActorKind(row["actor_kind"]),
        actor_ref=row["actor_ref"],
        notice_version=row["notice_version"],
        evidence_ref=row["evidence_ref"],
        correlation_id=row["correlation_id"],
        client_id=row["client_id"],
    )


def _holding(row: asyncpg.Record) -> EndedHolding:
    values = dict(row)
    return EndedHolding(**values | {"subject_id": str(row["subject_id"]), "kind": IdentifierKind(row["kind"])})


class _Reads:
    """The lock-free reads, on a pool (each its own statement) or inside a unit of work's connection."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self._db = db

    async def now(self) -> datetime:
        # clock_timestamp(), not the transaction's start: a unit of work asks after taking its
        # subject's lock, so decisions of one subject are stamped in the order they commit
        now: datetime = await self._db.fetchval("SELECT clock_timestamp()")
        return now

    async def subject(self, subject_id: str) -> SubjectRow | None:
        row = await self._db.fetchrow(
            f"SELECT {SUBJECT_COLUMNS} FROM consent.subjects WHERE subject_id = $1", UUID(subject_id)
        )
        return None if row is None else _subject(row)

    async def subject_by_national_id(self, digest: str) -> str | None:
        found = await self._db.fetchval("SELECT subject_id FROM consent.subjects WHERE national_id_hash = $1", digest)
        return None if found is None else str(found)

    async def find_subjects(self, kind: IdentifierKind, digest: str) -> list[str]:
        rows = await self._db.fetch(FIND_SUBJECTS[kind], digest)
        return [str(r["subject_id"]) for r in rows]

    async def consents(self, subject_id: str) -> list[CurrentConsent]:
        return await self.consents_of([subject_id])

    async def consents_of(self, subject_ids: Sequence[str]) -> list[CurrentConsent]:
        rows = await self._db.fetch(
            f"SELECT {CURRENT_COLUMNS} FROM consent.consents WHERE subject_id = ANY($1::uuid[]) "
            'ORDER BY subject_id, purpose COLLATE "C", channel COLLATE "C"',
            [UUID(s) for s in subject_ids],
        )
        return [_current(r) for r in rows]

    async def ledger(self, subject_id: str) -> list[LedgerEntry]:
        rows = await self._db.fetch(
            f"SELECT seq, {LEDGER_COLUMNS} FROM consent.ledger WHERE subject_id = $1 ORDER BY seq", UUID(subject_id)
        )
        return [_ledger_entry(r) for r in rows]

    async def ended_holdings(self, subject_id: str) -> list[EndedHolding]:
        rows = await self._db.fetch(
            f"SELECT {HOLDING_COLUMNS} FROM consent.identifier_holdings WHERE subject_id = $1 "
            'ORDER BY until, kind COLLATE "C"',
            UUID(subject_id),
        )
        return [_holding(r) for r in rows]


def ledger_row(c: ConsentChanged, actor_ref: str | None, client_id: str | None) -> tuple[Any, ...]:
    """A change as one ledger row, in `LEDGER_COLUMNS` order (the API's writes and the bulk import's)."""
    return (
        UUID(c.event_id),
        UUID(c.subject_id),
        c.purpose,
        c.channel or "",
        c.status,
        c.previous_status,
        c.version,
        c.occurred_at,
        c.recorded_at,
        c.valid_until,
        c.last_used_at,
        c.source,
        c.actor_kind,
        actor_ref,
        c.notice_version,
        c.evidence_ref,
        c.correlation_id,
        client_id,
    )


class PostgresUnitOfWork(_Reads):
    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self._conn = conn

    async def lock_subject_at(self, subject_id: str) -> tuple[SubjectRow | None, datetime]:
        # one round trip: the outer row's clock_timestamp() is evaluated after the CTE's row lock is held
        row = await self._conn.fetchrow(LOCK_SUBJECT_AT, UUID(subject_id))
        assert row is not None  # the outer join always yields one row
        values = dict(row)
        locked_at: datetime = values.pop("locked_at")
        return (None if values["subject_id"] is None else _subject(values)), locked_at

    async def lock_subjects(self, subject_ids: Sequence[str]) -> list[SubjectRow]:
        # the rows are locked as the sort returns them: in id order
        rows = await self._conn.fetch(
            f"SELECT {SUBJECT_COLUMNS} FROM consent.subjects WHERE subject_id = ANY($1::uuid[]) "
            "ORDER BY subject_id FOR UPDATE",
            [UUID(s) for s in subject_ids],
        )
        return [_subject(r) for r in rows]

    async def insert_subject(self, row: SubjectRow) -> None:
        try:
            await self._conn.execute(
                f"INSERT INTO consent.subjects ({SUBJECT_COLUMNS}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
                UUID(row.subject_id),
                row.kind.value,
                row.country,
                row.account_id,
                row.phone_hash,
                row.email_hash,
                row.national_id_hash,
                row.phone_enc,
                row.email_enc,
                row.national_id_enc,
                row.version,
                row.created_at,
                row.updated_at,
                row.erased_at,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != NATIONAL_ID_INDEX:
                raise
            raise AlreadyStored("a subject with this national id is already registered") from exc

    async def erase_subject(self, subject_id: str, at: datetime) -> SubjectRow:
        row = await self._conn.fetchrow(ERASE_SUBJECT, UUID(subject_id), at)
        if row is None:
            raise SubjectNotFound(subject_id)
        return _subject(row)

    async def release_identifiers(
        self, subject_id: str, kinds: Sequence[IdentifierKind], reason: str | None, at: datetime
    ) -> SubjectRow:
        wanted = [k.value for k in kinds if k in (IdentifierKind.PHONE, IdentifierKind.EMAIL)]
        row = await self._conn.fetchrow(RELEASE_IDENTIFIERS, UUID(subject_id), wanted, at, reason)
        if row is None:
            raise SubjectNotFound(subject_id)
        return _subject(row)

    async def save_changes(
        self, changes: Sequence[ConsentChanged], actor_ref: str | None, topic: str, client_id: str | None = None
    ) -> None:
        """One statement for the whole batch: ledger rows, current state and outbox rows."""
        rows = [ledger_row(c, actor_ref, client_id) for c in changes]
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in LEDGER_TYPES]
        await self._conn.execute(
            SAVE_CHANGES,
            *columns,
            topic,
            OUTBOX_CONSENT,
            [consent_key(c.subject_id, c.purpose, c.channel) for c in changes],
            [c.as_record() for c in changes],
        )

    async def enqueue_subject(self, topic: str, event: SubjectChanged) -> None:
        await self._conn.execute(
            "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) VALUES ($1,$2,$3,$4)",
            topic,
            event.subject_id,
            OUTBOX_SUBJECT,
            event.as_record(),
        )

    async def enqueue_tombstones(self, topic: str, keys: Sequence[str]) -> None:
        if keys:
            await self._conn.execute(
                "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
                "SELECT $1, k, $2, NULL FROM unnest($3::text[]) WITH ORDINALITY AS t(k, ord) ORDER BY ord",
                topic,
                OUTBOX_CONSENT,
                list(keys),
            )

    async def stored_response(self, idempotency_key: str) -> StoredResponse | None:
        row = await self._conn.fetchrow(
            "SELECT subject_id, request_hash, response FROM consent.idempotency WHERE idempotency_key = $1",
            idempotency_key,
        )
        return None if row is None else StoredResponse(str(row["subject_id"]), row["request_hash"], row["response"])

    async def remember_response(self, idempotency_key: str, stored: StoredResponse) -> None:
        try:
            await self._conn.execute(
                "INSERT INTO consent.idempotency (idempotency_key, subject_id, request_hash, response) "
                "VALUES ($1,$2,$3,$4)",
                idempotency_key,
                UUID(stored.subject_id),
                stored.request_hash,
                stored.response,
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyStored("this idempotency key was already used") from exc


class PostgresConsentStore(_Reads, PostgresOutbox):
    """Needs a pool whose connections decode json/jsonb (`adapters.postgres.create_pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        _Reads.__init__(self, pool)
        PostgresOutbox.__init__(self, pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ConsentUnitOfWork]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresUnitOfWork(conn)

    async def subjects_with_grants_until(self, at: datetime, after: str | None, limit: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT subject_id FROM consent.consents "
            "WHERE status = 'granted' AND valid_until <= $1 AND ($2::uuid IS NULL OR subject_id > $2) "
            "ORDER BY subject_id LIMIT $3",
            at,
            UUID(after) if after else None,
            limit,
        )
        return [str(r["subject_id"]) for r in rows]

    async def documented_withdrawals(
        self, purpose: PurposeCode, occurred_before: datetime, after: CurrentConsent | None, limit: int
    ) -> list[CurrentConsent]:
        if after is None:
            rows = await self._pool.fetch(DOCUMENTED_WITHDRAWALS, purpose, occurred_before, limit)
        else:
            resume = (UUID(after.subject_id), after.record.channel or "")
            rows = await self._pool.fetch(DOCUMENTED_WITHDRAWALS_AFTER, purpose, occurred_before, limit, *resume)
        return [_current(r) for r in rows]

    async def purge_documentation(self, consents: Sequence[CurrentConsent], topic: str) -> int:
        if not consents:
            return 0
        purged: int = await self._pool.fetchval(
            PURGE_DOCUMENTATION,
            [UUID(c.subject_id) for c in consents],
            [c.record.purpose for c in consents],
            [c.record.channel or "" for c in consents],
            [c.record.version for c in consents],
            topic,
            OUTBOX_CONSENT,
        )
        return purged
