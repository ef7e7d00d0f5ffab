"""The consent service's persistence port: what the use cases and the sweeper need from a store.

A use case opens one unit of work (`async with store.transaction() as uow:`); everything it writes
there (subject, ledger, current state, outbox, idempotency) commits together or not at all.
Reads that need no lock may go through the store itself. Two adapters implement it: PostgreSQL
(`store.py`) and memory (`memory.py`), held to the same contract by one test suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from samtykke.domain.consent import ConsentRecord
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.model import ActorKind, Channel, ConsentStatus, PurposeCode, Source, SubjectKind

OUTBOX_CONSENT = "ConsentChanged"
OUTBOX_SUBJECT = "SubjectChanged"


class IdentifierKind(StrEnum):
    """The identifiers a subject can be found by (their keyed hashes, never the clear value)."""

    PHONE = "phone"
    EMAIL = "email"
    NATIONAL_ID = "national_id"


class AlreadyStored(Exception):
    """A unique fact is already held: a national id registered to a subject, an idempotency key used."""


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

    def digest(self, kind: IdentifierKind) -> str | None:
        return {
            IdentifierKind.PHONE: self.phone_hash,
            IdentifierKind.EMAIL: self.email_hash,
            IdentifierKind.NATIONAL_ID: self.national_id_hash,
        }[kind]


@dataclass(frozen=True, slots=True)
class EndedHolding:
    """A phone or e-mail a subject held from `since` and stopped holding at `until` (erased,
    released, replaced): by its keyed hash only, so a recycled number's check knows its past."""

    subject_id: str
    kind: IdentifierKind  # phone or e-mail
    hash: str
    since: datetime
    until: datetime
    reason: str | None


@dataclass(frozen=True, slots=True)
class CurrentConsent:
    """The current state of one (subject, purpose, channel) and how it was last recorded."""

    subject_id: str
    record: ConsentRecord
    recorded_at: datetime
    notice_version: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    seq: int
    event_id: str
    subject_id: str
    purpose: PurposeCode
    channel: Channel | None
    status: ConsentStatus
    previous_status: ConsentStatus | None
    version: int
    occurred_at: datetime
    recorded_at: datetime
    valid_until: datetime | None
    last_used_at: datetime | None
    source: Source
    actor_kind: ActorKind
    actor_ref: str | None
    notice_version: str | None
    evidence_ref: str | None
    correlation_id: str | None
    client_id: str | None = None  # the credential that made the change

    @property
    def record(self) -> ConsentRecord:
        """The state this change set, as the domain's rules read it."""
        return ConsentRecord(
            self.purpose, self.channel, self.status, self.version, self.occurred_at, self.valid_until, self.last_used_at
        )


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response to a request sent with an Idempotency-Key, kept so a retry gets it again."""

    subject_id: str
    request_hash: str
    response: dict[str, Any]  # the JSON body as first sent


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    key: str  # the record key: a consent key (`domain.consent_keys`) or a subject id
    schema_name: str
    payload: dict[str, Any] | None  # None: a tombstone, the consent's records leave the compacted topic
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxSnapshot:
    """The unpublished messages as one database snapshot sees them.

    `taken_at` is the database's clock at the start of the snapshot's transaction, so every commit
    acknowledged before it is either in `pending` or already published. `complete` is false when
    `pending` was cut at the limit; `held` are the subjects with a dead-lettered message.
    """

    taken_at: datetime
    pending: list[OutboxMessage]
    complete: bool
    held: frozenset[str]


@dataclass(frozen=True, slots=True)
class DeadLetteredMessage:
    """An outbox message the relay could not encode, set aside with the reason."""

    message: OutboxMessage
    reason: str
    dead_lettered_at: datetime


class ConsentReads(Protocol):
    """Reads that need no lock: a unit of work offers them too, inside its transaction."""

    async def now(self) -> datetime:
        """The database's clock (the memory store's own): every replica stamps time from one clock."""
        ...

    async def subject(self, subject_id: str) -> SubjectRow | None: ...

    async def subject_by_national_id(self, digest: str) -> str | None: ...

    async def find_subjects(self, kind: IdentifierKind, digest: str) -> list[str]:
        """Subject ids holding that identifier hash, oldest registration first."""
        ...

    async def consents(self, subject_id: str) -> list[CurrentConsent]:
        """The subject's current state, ordered by purpose and channel (no channel first)."""
        ...

    async def ledger(self, subject_id: str) -> list[LedgerEntry]:
        """The subject's documented changes in the order they were recorded."""
        ...

    async def ended_holdings(self, subject_id: str) -> list[EndedHolding]:
        """The phones and e-mails the subject no longer holds, by when it stopped, then kind."""
        ...


class ConsentUnitOfWork(ConsentReads, Protocol):
    async def lock_subject_at(self, subject_id: str) -> tuple[SubjectRow | None, datetime]:
        """The subject, locked until the unit of work ends (one writer per subject at a time, so its
        outbox rows follow commit order), and the database's clock read once the lock is held (`now`)."""
        ...

    async def lock_subjects(self, subject_ids: Sequence[str]) -> list[SubjectRow]:
        """The subjects that exist among these, locked in id order (two units of work locking overlapping
        sets wait for each other, never deadlock), in that order."""
        ...

    async def consents_of(self, subject_ids: Sequence[str]) -> list[CurrentConsent]:
        """`consents` of several subjects at once, by subject id, then purpose and channel."""
        ...

    async def insert_subject(self, row: SubjectRow) -> None:
        """Raises `AlreadyStored` when another subject holds the national id hash."""
        ...

    async def erase_subject(self, subject_id: str, at: datetime) -> SubjectRow:
        """Drop the clear identifiers, ledger evidence and actor refs and stored responses;
        keep the hashes so suppression survives erasure, and record that the subject's hold on its
        phone and e-mail ended at `at`. Returns the subject afterwards."""
        ...

    async def release_identifiers(
        self, subject_id: str, kinds: Sequence[IdentifierKind], reason: str | None, at: datetime
    ) -> SubjectRow:
        """End the subject's hold on each phone / e-mail of `kinds` it holds (recorded as an ended
        holding, by hash) and clear that hash and its sealed value from the subject. Returns the
        subject afterwards, its version increased."""
        ...

    async def save_changes(
        self, changes: Sequence[ConsentChanged], actor_ref: str | None, topic: str, client_id: str | None = None
    ) -> None:
        """Append the ledger, set the current state to each key's latest version, enqueue the events."""
        ...

    async def enqueue_subject(self, topic: str, event: SubjectChanged) -> None: ...

    async def enqueue_tombstones(self, topic: str, keys: Sequence[str]) -> None:
        """Enqueue a tombstone (null value) for each consent key: compaction removes its records."""
        ...

    async def stored_response(self, idempotency_key: str) -> StoredResponse | None: ...

    async def remember_response(self, idempotency_key: str, stored: StoredResponse) -> None:
        """Raises `AlreadyStored` when the key was used before."""
        ...


class Outbox(Protocol):
    """The outbox as its relay and the sweeper's cleanup see it."""

    async def pending_outbox(self, limit: int) -> list[OutboxMessage]:
        """Unpublished messages in the order they were enqueued."""
        ...

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None: ...

    async def snapshot(self, limit: int) -> OutboxSnapshot:
        """Up to `limit` unpublished messages in enqueue order, with the instant they are complete for."""
        ...

    async def settle(self, published: Sequence[int], dead: Sequence[tuple[int, str]], at: datetime) -> None:
        """In one transaction: mark `published`, and move each `(id, reason)` of `dead` to the dead letters."""
        ...

    async def dead_letters(self) -> list[DeadLetteredMessage]:
        """The messages set aside, oldest first."""
        ...

    async def requeue_dead_letter(self, message_id: int) -> OutboxMessage | None:
        """Enqueue a dead letter again, as a new message at the end of the outbox; None when unknown."""
        ...

    async def discard_dead_letter(self, message_id: int) -> bool:
        """Drop a dead letter for good (its change stays in the ledger); false when unknown."""
        ...

    async def discard_published_outbox(self, before: datetime) -> int:
        """Delete messages published before `before`; returns how many."""
        ...


class ConsentStore(ConsentReads, Outbox, Protocol):
    def transaction(self) -> AbstractAsyncContextManager[ConsentUnitOfWork]:
        """Commits when the block ends, rolls back when it raises."""
        ...

    # -- the lifecycle sweeper's queries: candidates by an index-friendly condition; the
    # -- decision (lapsed? past its documentation deadline?) is the domain's
    async def subjects_with_grants_until(self, at: datetime, after: str | None, limit: int) -> list[str]:
        """Subjects (ascending, after `after`) holding a grant whose valid-until is at or before `at`."""
        ...

    async def documented_withdrawals(
        self, purpose: PurposeCode, occurred_before: datetime, after: CurrentConsent | None, limit: int
    ) -> list[CurrentConsent]:
        """Current states of `purpose` not granted, decided before `occurred_before`, that still
        have ledger rows; ordered by (subject, channel), resuming after the key of `after`."""
        ...

    async def purge_documentation(self, consents: Sequence[CurrentConsent], topic: str) -> int:
        """Delete the ledger rows of these keys, each only while its current version is still the
        one given (a decision recorded since keeps its documentation), and in the same transaction
        enqueue a tombstone on `topic` for each key purged. Returns the rows deleted."""
        ...
