"""Lifecycle sweeper: lapsed grants become `expired` changes; old documentation is purged.

Downstream tables then need no clock logic of their own (the suppression service still
evaluates valid-until at check time, so a late sweep never lets a lapsed grant through).
The store only pre-selects candidates; what lapsed and what may go is decided by the domain's
rules (`in_force`, `documentation_deadline`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from samtykke.domain.catalog import Purpose, PurposeCatalog
from samtykke.domain.consent import ConsentRecord, documentation_deadline, expire, general_objection, in_force
from samtykke.domain.model import ActorKind, ConsentStatus, Mechanism, Source

from .changes import consent_changed
from .metrics import ConsentMetrics
from .ports import ConsentStore

log = logging.getLogger(__name__)
DIRECT_MARKETING = "direct_marketing"  # its refusals on every channel object to all marketing
OUTBOX_KEEP = timedelta(days=7)
# the ledger's `client_id` of the changes the sweeper makes itself (lapses)
SWEEPER_CLIENT_ID = "samtykke:sweeper"


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired: int
    purged_ledger_rows: int
    purged_outbox_rows: int


def lapsed(record: ConsentRecord, now: datetime) -> bool:
    """A grant that is no longer in force: it is recorded as `expired`."""
    return record.status is ConsentStatus.GRANTED and not in_force(record.status, record.valid_until, now)


def past_documentation(purpose: Purpose, record: ConsentRecord, now: datetime) -> bool:
    deadline = documentation_deadline(purpose, record)
    return deadline is not None and deadline < now


class LifecycleSweeper:
    def __init__(
        self,
        store: ConsentStore,
        catalog: PurposeCatalog,
        metrics: ConsentMetrics,
        topic_changes: str,
        interval_seconds: float,
        batch_size: int = 500,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._metrics = metrics
        self._topic = topic_changes
        self._interval = interval_seconds
        self._batch = batch_size

    async def run(self) -> None:
        while True:
            try:
                report = await self.sweep(await self._store.now())  # the database's clock
                if report.expired or report.purged_ledger_rows:
                    log.info("lifecycle sweep: %s", report)
            except asyncio.CancelledError:
                raise
            except Exception:  # transient (database restart): try again next interval
                log.exception("lifecycle sweep failed")
            await asyncio.sleep(self._interval)

    async def sweep(self, now: datetime) -> SweepReport:
        expired = await self._expire(now)
        purged = await self._purge_documentation(now)
        outbox = await self._store.discard_published_outbox(now - OUTBOX_KEEP)
        self._metrics.expired.inc(expired)
        self._metrics.purged.inc(purged)
        return SweepReport(expired, purged, outbox)

    async def _expire(self, now: datetime) -> int:
        expired, after = 0, None
        while subjects := await self._store.subjects_with_grants_until(now, after, self._batch):
            expired += await self._expire_page(subjects, now)
            after = subjects[-1]
        return expired

    async def _expire_page(self, subject_ids: list[str], now: datetime) -> int:
        """One transaction per page of subjects, not per subject: after an import of grants that lapsed
        years ago, tens of thousands of subjects expire at once, and a transaction each (five round
        trips) took the relay's and the API's share of the machine for a minute."""
        async with self._store.transaction() as uow:
            live = {s.subject_id: s for s in await uow.lock_subjects(subject_ids) if s.erased_at is None}
            # an erased subject's consents left the log with its erasure (tombstones): nothing to expire
            changes = [
                consent_changed(live[c.subject_id], expire(c.record), c.record, now, Source.SYSTEM, ActorKind.SYSTEM)
                for c in await uow.consents_of(list(live))
                if lapsed(c.record, now)
            ]
            if changes:
                await uow.save_changes(changes, None, self._topic, SWEEPER_CLIENT_ID)
        self._metrics.count_changes(changes)
        return len(changes)

    async def _objects_to_all_marketing(self, direct_marketing: Purpose, subject_id: str) -> bool:
        subject = await self._store.subject(subject_id)
        records = [c.record for c in await self._store.consents(subject_id)]
        return subject is not None and general_objection(direct_marketing, subject.kind, records)

    async def _purge_documentation(self, now: datetime) -> int:
        """Ledger rows of opt-in consents no longer in force, past retention after last use.

        Objections to opt-out purposes are never purged: purging them would re-allow contact.
        The current-state row stays too (it holds no personal data and carries the version).
        Each purged key's tombstone commits with the purge, so compaction removes the topic's copy.
        Direct-marketing refusals that together object to all marketing stay too: without them on
        the topic the gate would allow the opt-out purposes again.
        """
        purged = 0
        for purpose in self._catalog.purposes.values():
            if purpose.mechanism is not Mechanism.OPT_IN or purpose.retention_days is None:
                continue
            # a deadline counts from the later of decision and last use, so a decision after this
            # cutoff cannot be past it: the store may skip those by index
            cutoff = now - timedelta(days=purpose.retention_days)
            after = None
            while batch := await self._store.documented_withdrawals(purpose.code, cutoff, after, self._batch):
                due = [c for c in batch if past_documentation(purpose, c.record, now)]
                if purpose.code == DIRECT_MARKETING:
                    due = [c for c in due if not await self._objects_to_all_marketing(purpose, c.subject_id)]
                purged += await self._store.purge_documentation(due, self._topic)
                after = batch[-1]
        return purged
