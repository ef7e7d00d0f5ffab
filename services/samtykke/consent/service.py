"""Use cases of the consent service. Each write runs in one unit of work and enqueues its events there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from samtykke.adapters.vault import IdentifierVault
from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent import (
    ConsentRecord,
    RuleViolation,
    apply_decision,
    apply_usage,
    check_decision,
    latest_rows,
    state_at,
    status_at,
)
from samtykke.domain.consent_keys import consent_key
from samtykke.domain.events import ConsentChanged
from samtykke.domain.holdings import ReleaseReason
from samtykke.domain.identifiers import (
    InvalidIdentifier,
    identifier_hash,
    normalise_email,
    normalise_national_id,
    normalise_phone,
)
from samtykke.domain.model import ActorKind, Channel, Country, PurposeCode, Source, SubjectKind

from .changes import DecisionBatch, change_view, consent_changed, subject_changed
from .errors import Conflict, RulesBroken, SubjectNotFound
from .metrics import ConsentMetrics
from .ports import (
    AlreadyStored,
    ConsentStore,
    ConsentUnitOfWork,
    CurrentConsent,
    IdentifierKind,
    LedgerEntry,
    StoredResponse,
    SubjectRow,
)

__all__ = ["ConsentService", "DecisionBatch", "DocumentedConsent", "NewSubject", "SubjectRow", "utcnow"]

Consents = dict[tuple[str, str | None], ConsentRecord]


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
class DocumentedConsent:
    """A state of one key with the ledger behind it.

    `recorded` is how the state was last written (a usage report or a lapse included); `decision` is
    the ledger row of the decision in force, what a data-protection authority asks about. It is None
    only when the key's documentation was purged after its retention period.
    """

    record: ConsentRecord
    recorded: CurrentConsent | LedgerEntry
    decision: LedgerEntry | None


def normalise(kind: IdentifierKind, raw: str, country: Country | None) -> str:
    if kind is IdentifierKind.PHONE:
        return normalise_phone(raw, country)
    if kind is IdentifierKind.EMAIL:
        return normalise_email(raw)
    if country is None:
        raise InvalidIdentifier("a national id needs its country")
    return normalise_national_id(raw, country)


class ConsentService:
    def __init__(
        self,
        store: ConsentStore,
        catalog: PurposeCatalog,
        vault: IdentifierVault,
        hash_key: bytes,
        topic_changes: str,
        topic_subjects: str,
        metrics: ConsentMetrics,
    ) -> None:
        self._store = store
        self.catalog = catalog
        self._vault = vault
        self._hash_key = hash_key
        self._changes = topic_changes
        self._subjects = topic_subjects
        self._metrics = metrics

    # -- subjects ---------------------------------------------------------------
    def _digest(self, kind: IdentifierKind, normalised: str, country: Country | None) -> str:
        # a national id is keyed with its country: the same digits are different people in DK and SE
        label = f"national_id:{country}" if kind is IdentifierKind.NATIONAL_ID else kind.value
        return identifier_hash(self._hash_key, label, normalised)

    def _identifiers(self, new: NewSubject) -> dict[IdentifierKind, str | None]:
        problems, values = [], {}
        for kind, raw in (
            (IdentifierKind.PHONE, new.phone),
            (IdentifierKind.EMAIL, new.email),
            (IdentifierKind.NATIONAL_ID, new.national_id),
        ):
            try:
                values[kind] = None if raw is None else normalise(kind, raw, new.country)
            except InvalidIdentifier as exc:
                problems.append(RuleViolation(f"identifiers.{kind}", str(exc)))
        if new.kind in (SubjectKind.EMPLOYEE, SubjectKind.BUSINESS) and not new.account_id:
            problems.append(RuleViolation("account_id", f"a {new.kind.value} belongs to a business account"))
        if problems:
            raise RulesBroken(problems)
        return values

    async def register_subject(self, new: NewSubject) -> SubjectRow:
        clear = self._identifiers(new)
        digests = {kind: self._digest(kind, value, new.country) if value else None for kind, value in clear.items()}
        try:
            async with self._store.transaction() as uow:
                now = await uow.now()
                row = SubjectRow(
                    subject_id=str(uuid4()),
                    kind=new.kind,
                    country=new.country.value,
                    account_id=new.account_id,
                    phone_hash=digests[IdentifierKind.PHONE],
                    email_hash=digests[IdentifierKind.EMAIL],
                    national_id_hash=digests[IdentifierKind.NATIONAL_ID],
                    phone_enc=self._vault.seal(clear[IdentifierKind.PHONE]),
                    email_enc=self._vault.seal(clear[IdentifierKind.EMAIL]),
                    national_id_enc=self._vault.seal(clear[IdentifierKind.NATIONAL_ID]),
                    version=1,
                    created_at=now,
                    updated_at=now,
                    erased_at=None,
                )
                await uow.insert_subject(row)
                await uow.enqueue_subject(self._subjects, subject_changed(row, now))
        except AlreadyStored as exc:
            # the unique index decides (no check-then-insert race); the holder is named for the client
            digest = digests[IdentifierKind.NATIONAL_ID]
            holder = await self._store.subject_by_national_id(digest) if digest else None
            raise Conflict("a subject with this national id is already registered", holder) from exc
        return row

    async def subject(self, subject_id: str) -> SubjectRow:
        row = await self._store.subject(subject_id)
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

    async def find_subjects(self, kind: IdentifierKind, raw: str, country: Country | None) -> list[str]:
        try:
            value = normalise(kind, raw, country)
        except InvalidIdentifier as exc:
            raise RulesBroken([RuleViolation(kind.value, str(exc))]) from exc
        return await self._store.find_subjects(kind, self._digest(kind, value, country))

    async def erase(self, subject_id: str) -> SubjectRow:
        async with self._store.transaction() as uow:
            row, now = await uow.lock_subject_at(subject_id)
            if row is None:
                raise SubjectNotFound(subject_id)
            if row.erased_at is None:
                row = await uow.erase_subject(subject_id, now)
                # the consents leave the compacted log (tombstones); the erased subject's own record
                # stays on its topic, so every gate keeps blocking it
                consents = await uow.consents(subject_id)
                keys = [consent_key(subject_id, c.record.purpose, c.record.channel) for c in consents]
                await uow.enqueue_tombstones(self._changes, keys)
                ended = await uow.ended_holdings(subject_id)
                await uow.enqueue_subject(self._subjects, subject_changed(row, now, ended))
        return row

    async def release_identifiers(
        self, subject_id: str, kinds: Sequence[IdentifierKind], reason: ReleaseReason | None
    ) -> SubjectRow:
        """The subject stops holding its phone and/or e-mail (the subscription ended, the number was
        ported out): the subject stays, the identifier leaves it, and the gate answers a check by it
        with this subject's block only until the quarantine is over."""
        async with self._store.transaction() as uow:
            row, now = await self._lock_live_subject(uow, subject_id)
            missing = [k for k in kinds if row.digest(k) is None]
            if missing:
                raise Conflict(f"the subject holds no {' and no '.join(k.value for k in missing)} to release")
            row = await uow.release_identifiers(subject_id, kinds, reason.value if reason else None, now)
            ended = await uow.ended_holdings(subject_id)
            await uow.enqueue_subject(self._subjects, subject_changed(row, now, ended))
        return row

    # -- consents ---------------------------------------------------------------
    async def record(
        self, subject_id: str, batch: DecisionBatch, idempotency_key: str | None, fingerprint: str = ""
    ) -> dict[str, Any]:
        """Record a batch atomically. `fingerprint` identifies the request as sent, so a retry
        under the same Idempotency-Key is recognised even though defaults (now) differ."""
        try:
            async with self._store.transaction() as uow:
                subject, now = await self._lock_live_subject(uow, subject_id)
                if idempotency_key and (prior := await uow.stored_response(idempotency_key)) is not None:
                    if prior.request_hash != fingerprint or prior.subject_id != subject_id:
                        raise _key_reused()
                    return prior.response | {"replayed": True}
                changes = self._decide(subject, await _current_records(uow, subject_id), batch, now)
                await uow.save_changes(changes, batch.actor_ref, self._changes, batch.client_id)
                response = {"subject_id": subject_id, "changes": [change_view(c) for c in changes], "replayed": False}
                if idempotency_key:
                    await uow.remember_response(idempotency_key, StoredResponse(subject_id, fingerprint, response))
        except AlreadyStored as exc:  # the same key, sent for another subject at the same moment
            raise _key_reused() from exc
        self._metrics.count_changes(changes)
        return response

    @staticmethod
    async def _lock_live_subject(uow: ConsentUnitOfWork, subject_id: str) -> tuple[SubjectRow, datetime]:
        """The subject, locked, and "now" stamped by the database under that lock: one clock for every
        replica, and concurrent requests for one subject never record "now" out of order."""
        subject, now = await uow.lock_subject_at(subject_id)
        if subject is None:
            raise SubjectNotFound(subject_id)
        if subject.erased_at is not None:
            raise Conflict("the subject is erased; no consent can be recorded")
        return subject, now

    def _decide(
        self, subject: SubjectRow, current: Consents, batch: DecisionBatch, now: datetime
    ) -> list[ConsentChanged]:
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
            changes.append(consent_changed(subject, after, before, now, batch.source, batch.actor_kind, batch))
        if problems:
            raise RulesBroken(problems)
        return changes

    async def report_usage(
        self,
        subject_id: str,
        purpose_code: str,
        channel: Channel | None,
        used_at: datetime | None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """`used_at` None: now, by the database's clock."""
        purpose = self.catalog.get(purpose_code)
        if purpose is None or not purpose.decidable:
            raise RulesBroken([RuleViolation("purpose", f"unknown consent purpose '{purpose_code}'")])
        async with self._store.transaction() as uow:
            subject, now = await self._lock_live_subject(uow, subject_id)
            if used_at is None:
                used_at = now
            elif used_at > now:
                raise RulesBroken([RuleViolation("used_at", "must not be in the future")])
            current = (await _current_records(uow, subject_id)).get((purpose_code, channel.value if channel else None))
            updated = apply_usage(purpose, current, used_at) if current else None
            if updated is None:
                raise Conflict("no grant in force for that purpose and channel at used_at")
            change = consent_changed(subject, updated, current, now, Source.USAGE_REPORT, ActorKind.SYSTEM)
            await uow.save_changes([change], None, self._changes, client_id)
        self._metrics.count_changes([change])
        return change_view(change)

    async def current(self, subject_id: str) -> list[CurrentConsent]:
        """The current state, ordered by purpose and channel, with lapse applied now (the database's
        clock): a grant past its valid-until reads `expired` before the sweeper records it."""
        await self.subject(subject_id)
        now = await self._store.now()
        return [
            replace(c, record=replace(c.record, status=status_at(c.record, now)))
            for c in await self._store.consents(subject_id)
        ]

    async def current_documented(self, subject_id: str) -> list[DocumentedConsent]:
        """`current` with the decision in force of each key, from the subject's ledger."""
        current = await self.current(subject_id)
        # the state is read first: a ledger row newer than it (a change committed in between) is ignored
        versions = {c.record.key: c.record.version for c in current}
        ledger = [e for e in await self._store.ledger(subject_id) if e.version <= versions.get(e.record.key, 0)]
        decisions = latest_rows(ledger, decisions_only=True)
        return [DocumentedConsent(c.record, c, decisions.get(c.record.key)) for c in current]

    async def state_at(self, subject_id: str, at: datetime) -> list[DocumentedConsent]:
        """The state in force at `at`, folded from the ledger (lapse applied), ordered like `current`,
        with the row that set it and the decision in force then."""
        await self.subject(subject_id)
        ledger = await self._store.ledger(subject_id)
        state = state_at((entry.record for entry in ledger), at)
        recorded, decisions = latest_rows(ledger, at), latest_rows(ledger, at, decisions_only=True)
        return [
            DocumentedConsent(state[key], recorded[key], decisions.get(key))
            for key in sorted(state, key=lambda k: (k[0], k[1] or ""))
        ]

    async def history(self, subject_id: str) -> list[LedgerEntry]:
        await self.subject(subject_id)
        return await self._store.ledger(subject_id)


async def _current_records(uow: ConsentUnitOfWork, subject_id: str) -> Consents:
    return {c.record.key: c.record for c in await uow.consents(subject_id)}


def _key_reused() -> RulesBroken:
    return RulesBroken([RuleViolation("Idempotency-Key", "was already used for a different request")])
