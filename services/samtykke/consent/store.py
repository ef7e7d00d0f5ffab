"""SQL for the consent service: subjects, current consents, the ledger, the outbox, idempotency.

Every function takes a connection so the caller decides the transaction: a decision, its
ledger row and its outbox row always commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from samtykke.domain.consent import ConsentRecord
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import Channel, ConsentStatus, PurposeCode, SubjectKind

OUTBOX_CONSENT = "ConsentChanged"
OUTBOX_SUBJECT = "SubjectChanged"


@dataclass(frozen=True, slots=True)
class SubjectRow:
    subject_id: str
    kind: SubjectKind
    country: str
    account_id: str | None
    phone_hash: str | None
    email_hash: str | None
    national_id_hash: str | None
    phone_enc: bytes | None
    email_enc: bytes | None
    national_id_enc: bytes | None
    version: int
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SubjectRow:
        values = dict(row)
        values["subject_id"] = str(values["subject_id"])
        values["kind"] = SubjectKind(values["kind"])
        return cls(**values)


_SUBJECT_COLUMNS = (
    "subject_id, kind, country, account_id, phone_hash, email_hash, national_id_hash, "
    "phone_enc, email_enc, national_id_enc, version, created_at, updated_at, erased_at"
)


async def insert_subject(conn: asyncpg.Connection, row: SubjectRow) -> None:
    await conn.execute(
        f"INSERT INTO consent.subjects ({_SUBJECT_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
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


async def subject_by_national_id(conn: asyncpg.Connection, digest: str) -> str | None:
    found = await conn.fetchval("SELECT subject_id FROM consent.subjects WHERE national_id_hash = $1", digest)
    return None if found is None else str(found)


async def get_subject(conn: asyncpg.Connection, subject_id: str, lock: bool = False) -> SubjectRow | None:
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(
        f"SELECT {_SUBJECT_COLUMNS} FROM consent.subjects WHERE subject_id = $1{suffix}", UUID(subject_id)
    )
    return None if row is None else SubjectRow.from_row(row)


async def find_subjects(conn: asyncpg.Connection, column: str, digest: str) -> list[str]:
    assert column in {"phone_hash", "email_hash", "national_id_hash"}
    rows = await conn.fetch(f"SELECT subject_id FROM consent.subjects WHERE {column} = $1 ORDER BY created_at", digest)
    return [str(r["subject_id"]) for r in rows]


async def erase_subject(conn: asyncpg.Connection, subject_id: str, at: datetime) -> int:
    """Drop the clear (encrypted) identifiers; keep hashes so suppression survives erasure."""
    version: int = await conn.fetchval(
        "UPDATE consent.subjects SET phone_enc = NULL, email_enc = NULL, national_id_enc = NULL, "
        "erased_at = $2, updated_at = $2, version = version + 1 WHERE subject_id = $1 RETURNING version",
        UUID(subject_id),
        at,
    )
    await conn.execute(
        "UPDATE consent.ledger SET evidence_ref = NULL, actor_ref = NULL WHERE subject_id = $1",
        UUID(subject_id),
    )
    await conn.execute("DELETE FROM consent.idempotency WHERE subject_id = $1", UUID(subject_id))
    return version


def _record(row: asyncpg.Record) -> ConsentRecord:
    return ConsentRecord(
        purpose=PurposeCode(row["purpose"]),
        channel=Channel(row["channel"]) if row["channel"] else None,
        status=ConsentStatus(row["status"]),
        version=row["version"],
        occurred_at=row["occurred_at"],
        valid_until=row["valid_until"],
        last_used_at=row["last_used_at"],
    )


async def current_consents(conn: asyncpg.Connection, subject_id: str) -> dict[tuple[str, str | None], ConsentRecord]:
    rows = await conn.fetch(
        "SELECT purpose, channel, status, version, occurred_at, valid_until, last_used_at "
        "FROM consent.consents WHERE subject_id = $1 ORDER BY purpose, channel",
        UUID(subject_id),
    )
    return {r.key: r for r in map(_record, rows)}


async def current_rows(conn: asyncpg.Connection, subject_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT purpose, NULLIF(channel, '') AS channel, status, version, occurred_at, recorded_at, "
        "valid_until, last_used_at, notice_version, source FROM consent.consents "
        "WHERE subject_id = $1 ORDER BY purpose, channel",
        UUID(subject_id),
    )
    return [dict(r) for r in rows]


_LEDGER_COLUMNS = (
    "event_id, subject_id, purpose, channel, status, previous_status, version, occurred_at, "
    "recorded_at, valid_until, last_used_at, source, actor_kind, actor_ref, notice_version, "
    "evidence_ref, correlation_id"
)


async def ledger(conn: asyncpg.Connection, subject_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT seq, {_LEDGER_COLUMNS} FROM consent.ledger WHERE subject_id = $1 ORDER BY seq",
        UUID(subject_id),
    )
    history = []
    for r in rows:
        entry = dict(r)
        entry["event_id"] = str(entry["event_id"])
        entry["subject_id"] = str(entry["subject_id"])
        entry["channel"] = entry["channel"] or None
        history.append(entry)
    return history


_LEDGER_TYPES = (
    "uuid",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
)
_CURRENT_COLUMNS = (
    "subject_id, purpose, channel, status, version, occurred_at, recorded_at, valid_until, last_used_at, "
    "notice_version, source"
)
# One round trip for a whole batch: the ledger rows, the current state (the latest change per key,
# since a batch may decide one key twice) and the outbox rows in the order of the changes.
_SAVE_CHANGES = (
    "WITH rows AS (SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_LEDGER_TYPES, start=1))
    + f") WITH ORDINALITY AS r({_LEDGER_COLUMNS}, ord)), "
    f"ledger AS (INSERT INTO consent.ledger ({_LEDGER_COLUMNS}) SELECT {_LEDGER_COLUMNS} FROM rows ORDER BY ord), "
    f"current AS (INSERT INTO consent.consents ({_CURRENT_COLUMNS}) "
    f"SELECT DISTINCT ON (subject_id, purpose, channel) {_CURRENT_COLUMNS} FROM rows "
    "ORDER BY subject_id, purpose, channel, version DESC "
    "ON CONFLICT (subject_id, purpose, channel) DO UPDATE SET "
    "status = EXCLUDED.status, version = EXCLUDED.version, occurred_at = EXCLUDED.occurred_at, "
    "recorded_at = EXCLUDED.recorded_at, valid_until = EXCLUDED.valid_until, "
    "last_used_at = EXCLUDED.last_used_at, notice_version = EXCLUDED.notice_version, "
    "source = EXCLUDED.source) "
    "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    "SELECT $18, o.key, $19, o.payload FROM unnest($20::text[], $21::jsonb[]) WITH ORDINALITY AS o(key, payload, ord) "
    "ORDER BY o.ord"
)


async def save_changes(
    conn: asyncpg.Connection, changes: list[ConsentChanged], actor_ref: str | None, topic: str
) -> None:
    """Append the ledger, upsert the current state and enqueue the events: one statement."""
    rows = [
        (
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
        )
        for c in changes
    ]
    columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in _LEDGER_TYPES]
    await conn.execute(
        _SAVE_CHANGES,
        *columns,
        topic,
        OUTBOX_CONSENT,
        [c.subject_id for c in changes],
        [c.as_record() for c in changes],
    )


async def enqueue(
    conn: asyncpg.Connection, topic: str, schema_name: str, messages: list[tuple[str, dict[str, Any]]]
) -> None:
    await conn.executemany(
        "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) VALUES ($1,$2,$3,$4)",
        [(topic, key, schema_name, payload) for key, payload in messages],
    )


async def enqueue_subject(conn: asyncpg.Connection, topic: str, event: SubjectChanged) -> None:
    await enqueue(conn, topic, OUTBOX_SUBJECT, [(event.subject_id, event.as_record())])


async def idempotent_response(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT subject_id, request_hash, response FROM consent.idempotency WHERE idempotency_key = $1",
        key,
    )


async def remember_response(
    conn: asyncpg.Connection, key: str, subject_id: str, request_hash: str, response: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO consent.idempotency (idempotency_key, subject_id, request_hash, response) VALUES ($1,$2,$3,$4)",
        key,
        UUID(subject_id),
        request_hash,
        response,
    )
