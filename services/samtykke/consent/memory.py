"""The consent store in memory: the same contract as PostgreSQL, for fast tests of the use cases.

Transactions run one at a time on a copy of the tables, which replaces the committed tables only
when the block ends without an exception; reads outside a transaction see committed state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from samtykke.domain.consent import ConsentRecord
from samtykke.domain.consent_keys import consent_key, subject_of_key
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.holdings import ReleaseReason
from samtykke.domain.model import ActorKind, Channel, ConsentStatus, PurposeCode, Source

from .errors import SubjectNotFound
from .ports import (
    OUTBOX_CONSENT,
    OUTBOX_SUBJECT,
    AlreadyStored,
    ConsentUnitOfWork,
    CurrentConsent,
    DeadLetteredMessage,
    EndedHolding,
    IdentifierKind,
    LedgerEntry,
    OutboxMessage,
    OutboxSnapshot,
    StoredResponse,
    SubjectRow,
)

_HELD = (IdentifierKind.PHONE, IdentifierKind.EMAIL)  # what changes hands; a national id never does
ConsentKey = tuple[str, str, str]  # subject, purpose, channel ('' for none), ordered as PostgreSQL does


def _key(subject_id: str, purpose: str, channel: Channel | str | None) -> ConsentKey:
    return (subject_id, purpose, channel or "")


def _json(value: dict[str, Any]) -> dict[str, Any]:
    """What a jsonb column gives back: a copy, and only if the value is JSON at all."""
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


@dataclass
class _Tables:
    subjects: dict[str, SubjectRow] = field(default_factory=dict)
    consents: dict[ConsentKey, CurrentConsent] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    outbox: list[tuple[OutboxMessage, datetime | None]] = field(default_factory=list)  # message, published at
    dead_letters: dict[int, DeadLetteredMessage] = field(default_factory=dict)
    responses: dict[str, StoredResponse] = field(default_factory=dict)
    holdings: list[EndedHolding] = field(default_factory=list)
    last_seq: int = 0
    last_outbox_id: int = 0

    def copy(self) -> _Tables:
        # the rows are frozen, so copying the containers isolates a transaction
        return replace(
            self,
            subjects=dict(self.subjects),
            consents=dict(self.consents),
            ledger=list(self.ledger),
            outbox=list(self.outbox),
            dead_letters=dict(self.dead_letters),
            responses=dict(self.responses),
            holdings=list(self.holdings),
        )


class _Reads:
    def __init__(self, tables: Callable[[], _Tables], clock: Callable[[], datetime]) -> None:
        self._tables = tables
        self._clock = clock

    async def now(self) -> datetime:
        return self._clock()

    async def subject(self, subject_id: str) -> SubjectRow | None:
        return self._tables().subjects.get(subject_id)

    async def subject_by_national_id(self, digest: str) -> str | None:
        found = self._find(IdentifierKind.NATIONAL_ID, digest)
        return found[0] if found else None

    async def find_subjects(self, kind: IdentifierKind, digest: str) -> list[str]:
        return self._find(kind, digest)

    def _find(self, kind: IdentifierKind, digest: str) -> list[str]:
        found = [row for row in self._tables().subjects.values() if row.digest(kind) == digest]
        return [row.subject_id for row in sorted(found, key=lambda row: row.created_at)]

    async def consents(self, subject_id: str) -> list[CurrentConsent]:
        return await self.consents_of([subject_id])

    async def consents_of(self, subject_ids: Sequence[str]) -> list[CurrentConsent]:
        wanted = set(subject_ids)
        consents = self._tables().consents
        return [consents[k] for k in sorted(k for k in consents if k[0] in wanted)]

    async def ledger(self, subject_id: str) -> list[LedgerEntry]:
        return [entry for entry in self._tables().ledger if entry.subject_id == subject_id]

    async def ended_holdings(self, subject_id: str) -> list[EndedHolding]:
        mine = [h for h in self._tables().holdings if h.subject_id == subject_id]
        return sorted(mine, key=lambda h: (h.until, h.kind.value))


class MemoryUnitOfWork(_Reads):
    def __init__(self, tables: _Tables, clock: Callable[[], datetime]) -> None:
        super().__init__(lambda: tables, clock)
        self._t = tables

    async def lock_subject_at(self, subject_id: str) -> tuple[SubjectRow | None, datetime]:
        return self._t.subjects.get(subject_id), self._clock()  # transactions already run one at a time

    async def lock_subjects(self, subject_ids: Sequence[str]) -> list[SubjectRow]:
        subjects = self._t.subjects
        return [subjects[s] for s in sorted(set(subject_ids)) if s in subjects]

    async def insert_subject(self, row: SubjectRow) -> None:
        if row.national_id_hash is not None and self._find(IdentifierKind.NATIONAL_ID, row.national_id_hash):
            raise AlreadyStored("a subject with this national id is already registered")
        self._t.subjects[row.subject_id] = row

    async def erase_subject(self, subject_id: str, at: datetime) -> SubjectRow:
        row = self._t.subjects.get(subject_id)
        if row is None:
            raise SubjectNotFound(subject_id)
        self._end_holdings(row, _HELD, ReleaseReason.ERASED.value, at)
        erased = self._t.subjects[subject_id] = replace(
            row,
            phone_enc=None,
            email_enc=None,
            national_id_enc=None,
            erased_at=at,
            updated_at=at,
            version=row.version + 1,
        )
        self._t.ledger = [
            replace(e, evidence_ref=None, actor_ref=None) if e.subject_id == subject_id else e for e in self._t.ledger
        ]
        self._t.responses = {k: r for k, r in self._t.responses.items() if r.subject_id != subject_id}
        return erased

    async def release_identifiers(
        self, subject_id: str, kinds: Sequence[IdentifierKind], reason: str | None, at: datetime
    ) -> SubjectRow:
        row = self._t.subjects.get(subject_id)
        if row is None:
            raise SubjectNotFound(subject_id)
        self._end_holdings(row, kinds, reason, at)
        cleared: dict[str, Any] = {}
        for kind in kinds:
            if kind in _HELD:
                cleared |= {f"{kind.value}_hash": None, f"{kind.value}_enc": None}
        released = self._t.subjects[subject_id] = replace(row, **cleared, updated_at=at, version=row.version + 1)
        return released

    def _end_holdings(self, row: SubjectRow, kinds: Sequence[IdentifierKind], reason: str | None, at: datetime) -> None:
        """Record the end of each held kind, once (the primary key of PostgreSQL's table)."""
        recorded = {(h.subject_id, h.kind, h.since) for h in self._t.holdings}
        for kind in kinds:
            digest = row.digest(kind) if kind in _HELD else None
            if digest is not None and (row.subject_id, kind, row.created_at) not in recorded:
                self._t.holdings.append(EndedHolding(row.subject_id, kind, digest, row.created_at, at, reason))

    async def save_changes(
        self, changes: Sequence[ConsentChanged], actor_ref: str | None, topic: str, client_id: str | None = None
    ) -> None:
        latest: dict[ConsentKey, ConsentChanged] = {}
        for change in changes:
            self._t.last_seq += 1
            self._t.ledger.append(_ledger_entry(self._t.last_seq, change, actor_ref, client_id))
            key = _key(change.subject_id, change.purpose, change.channel)
            if key not in latest or change.version > latest[key].version:
                latest[key] = change
        for key, change in latest.items():
            self._t.consents[key] = _current(change)
        for change in changes:
            record_key = consent_key(change.subject_id, change.purpose, change.channel)
            self._enqueue(topic, record_key, OUTBOX_CONSENT, change.as_record())

    async def enqueue_subject(self, topic: str, event: SubjectChanged) -> None:
        self._enqueue(topic, event.subject_id, OUTBOX_SUBJECT, event.as_record())

    async def enqueue_tombstones(self, topic: str, keys: Sequence[str]) -> None:
        for key in keys:
            self._enqueue(topic, key, OUTBOX_CONSENT, None)

    def _enqueue(self, topic: str, key: str, schema_name: str, payload: dict[str, Any] | None) -> None:
        _enqueue(self._t, topic, key, schema_name, payload, self._clock())

    async def stored_response(self, idempotency_key: str) -> StoredResponse | None:
        return self._t.responses.get(idempotency_key)

    async def remember_response(self, idempotency_key: str, stored: StoredResponse) -> None:
        if idempotency_key in self._t.responses:
            raise AlreadyStored("this idempotency key was already used")
        self._t.responses[idempotency_key] = replace(stored, response=_json(stored.response))


class MemoryConsentStore(_Reads):
    """`clock` stands for the database's: a test may set the time every use case stamps."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._committed = _Tables()
        super().__init__(lambda: self._committed, clock)
        self._writer = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ConsentUnitOfWork]:
        async with self._writer:
            working = self._committed.copy()
            yield MemoryUnitOfWork(working, self._clock)
            self._committed = working  # not reached when the block raised: that is the rollback

    async def subjects_with_grants_until(self, at: datetime, after: str | None, limit: int) -> list[str]:
        found = {
            c.subject_id
            for c in self._committed.consents.values()
            if c.record.status is ConsentStatus.GRANTED
            and c.record.valid_until is not None
            and c.record.valid_until <= at
            and (after is None or c.subject_id > after)
        }
        return sorted(found)[:limit]

    async def documented_withdrawals(
        self, purpose: PurposeCode, occurred_before: datetime, after: CurrentConsent | None, limit: int
    ) -> list[CurrentConsent]:
        documented = {_key(e.subject_id, e.purpose, e.channel) for e in self._committed.ledger}
        resume = None if after is None else (after.subject_id, after.record.channel or "")
        found = [
            c
            for key, c in sorted(self._committed.consents.items())
            if key[1] == purpose
            and c.record.status is not ConsentStatus.GRANTED
            and c.record.occurred_at < occurred_before
            and key in documented
            and (resume is None or (key[0], key[2]) > resume)
        ]
        return found[:limit]

    # the writes below wait for the writer too: a transaction committing its copy afterwards
    # would otherwise put back what they removed

    async def purge_documentation(self, consents: Sequence[CurrentConsent], topic: str) -> int:
        async with self._writer:
            tables = self._committed
            doomed = {
                key
                for c in consents
                if (key := _key(c.subject_id, c.record.purpose, c.record.channel)) in tables.consents
                and tables.consents[key].record.version == c.record.version
            }
            kept = [e for e in tables.ledger if _key(e.subject_id, e.purpose, e.channel) not in doomed]
            gone = sorted({_key(e.subject_id, e.purpose, e.channel) for e in tables.ledger} & doomed)
            purged = len(tables.ledger) - len(kept)
            tables.ledger = kept
            for subject_id, purpose, channel in gone:
                _enqueue(tables, topic, consent_key(subject_id, purpose, channel), OUTBOX_CONSENT, None, self._clock())
        return purged

    async def pending_outbox(self, limit: int) -> list[OutboxMessage]:
        return [message for message, published in self._committed.outbox if published is None][:limit]

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None:
        marked = set(ids)
        async with self._writer:
            self._committed.outbox = [(m, at if m.id in marked else p) for m, p in self._committed.outbox]

    async def snapshot(self, limit: int) -> OutboxSnapshot:
        async with self._writer:  # between transactions: nothing half-committed to miss
            taken_at = self._clock()
            pending = [message for message, published in self._committed.outbox if published is None]
            held = frozenset(subject_of_key(dead.message.key) for dead in self._committed.dead_letters.values())
        return OutboxSnapshot(taken_at, pending[:limit], len(pending) <= limit, held)

    async def settle(self, published: Sequence[int], dead: Sequence[tuple[int, str]], at: datetime) -> None:
        marked, reasons = set(published), dict(dead)
        async with self._writer:
            tables, kept = self._committed, []
            for message, published_at in tables.outbox:
                if published_at is None and message.id in reasons:
                    tables.dead_letters.setdefault(message.id, DeadLetteredMessage(message, reasons[message.id], at))
                else:
                    kept.append((message, at if message.id in marked else published_at))
            tables.outbox = kept

    async def dead_letters(self) -> list[DeadLetteredMessage]:
        return [dead for _, dead in sorted(self._committed.dead_letters.items())]

    async def requeue_dead_letter(self, message_id: int) -> OutboxMessage | None:
        async with self._writer:
            dead = self._committed.dead_letters.pop(message_id, None)
            if dead is None:
                return None
            m = dead.message
            return _enqueue(self._committed, m.topic, m.key, m.schema_name, m.payload, self._clock())

    async def discard_dead_letter(self, message_id: int) -> bool:
        async with self._writer:
            return self._committed.dead_letters.pop(message_id, None) is not None

    async def discard_published_outbox(self, before: datetime) -> int:
        async with self._writer:
            outbox = self._committed.outbox
            kept = self._committed.outbox = [(m, p) for m, p in outbox if p is None or p >= before]
        return len(outbox) - len(kept)


def _enqueue(
    tables: _Tables, topic: str, key: str, schema_name: str, payload: dict[str, Any] | None, at: datetime
) -> OutboxMessage:
    tables.last_outbox_id += 1
    stored = None if payload is None else _json(payload)
    message = OutboxMessage(tables.last_outbox_id, topic, key, schema_name, stored, at)
    tables.outbox.append((message, None))
    return message


def _ledger_entry(seq: int, c: ConsentChanged, actor_ref: str | None, client_id: str | None) -> LedgerEntry:
    return LedgerEntry(
        seq=seq,
        event_id=c.event_id,
        subject_id=c.subject_id,
        purpose=PurposeCode(c.purpose),
        channel=Channel(c.channel) if c.channel else None,
        status=ConsentStatus(c.status),
        previous_status=ConsentStatus(c.previous_status) if c.previous_status else None,
        version=c.version,
        occurred_at=c.occurred_at,
        recorded_at=c.recorded_at,
        valid_until=c.valid_until,
        last_used_at=c.last_used_at,
        source=Source(c.source),
        actor_kind=ActorKind(c.actor_kind),
        actor_ref=actor_ref,
        notice_version=c.notice_version,
        evidence_ref=c.evidence_ref,
        correlation_id=c.correlation_id,
        client_id=client_id,
    )


def _current(c: ConsentChanged) -> CurrentConsent:
    return CurrentConsent(
        subject_id=c.subject_id,
        record=ConsentRecord(
            purpose=PurposeCode(c.purpose),
            channel=Channel(c.channel) if c.channel else None,
            status=ConsentStatus(c.status),
            version=c.version,
            occurred_at=c.occurred_at,
            valid_until=c.valid_until,
            last_used_at=c.last_used_at,
        ),
        recorded_at=c.recorded_at,
        notice_version=c.notice_version,
        source=Source(c.source),
    )
