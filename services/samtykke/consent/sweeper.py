"""Lifecycle sweeper: lapsed grants become `expired` changes; old documentation is purged.

Downstream tables then need no clock logic of their own (the suppression service still
evaluates valid-until at check time, so a late sweep never lets a lapsed grant through).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent import expire
from samtykke.domain.model import ActorKind, Mechanism, Source

from . import store
from .metrics import ConsentMetrics
from .service import ConsentService, utcnow

log = logging.getLogger(__name__)
OUTBOX_KEEP = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired: int
    purged_ledger_rows: int
    purged_outbox_rows: int


class LifecycleSweeper:
    def __init__(
        self,
        service: ConsentService,
        catalog: PurposeCatalog,
        metrics: ConsentMetrics,
        topic_changes: str,
        interval_seconds: float,
        batch_size: int = 500,
    ) -> None:
        self._service = service
        self._pool: asyncpg.Pool = service.pool
        self._catalog = catalog
        self._metrics = metrics
        self._topic = topic_changes
        self._interval = interval_seconds
        self._batch = batch_size

    async def run(self) -> None:
        while True:
            try:
                report = await self.sweep(utcnow())
                if report.expired or report.purged_ledger_rows:
                    log.info("lifecycle sweep: %s", report)
            except asyncio.CancelledError:
                raise
            except Exception:  # transient (database restart): try again next interval
                log.exception("lifecycle sweep failed")
            await asyncio.sleep(self._interval)

    async def sweep(self, now: datetime) -> SweepReport:
        expired = 0
        while batch := await self._expire_batch(now):
            expired += batch
        purged = await self._purge_documentation(now)
        outbox = await self._pool.execute("DELETE FROM consent.outbox WHERE published_at < $1", now - OUTBOX_KEEP)
        self._metrics.expired.inc(expired)
        self._metrics.purged.inc(purged)
        return SweepReport(expired, purged, int(outbox.split()[-1]))

    async def _expire_batch(self, now: datetime) -> int:
        subjects = await self._pool.fetch(
            "SELECT DISTINCT subject_id FROM consent.consents WHERE status = 'granted' AND valid_until <= $1 LIMIT $2",
            now,
            self._batch,
        )
        total = 0
        for row in subjects:
            total += await self._expire_subject(str(row["subject_id"]), now)
        return total

    async def _expire_subject(self, subject_id: str, now: datetime) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            subject = await store.get_subject(conn, subject_id, lock=True)
            if subject is None:
                return 0
            current = await store.current_consents(conn, subject_id)
            changes = [
                self._service.change_event(subject, expire(r), r, now, Source.SYSTEM, ActorKind.SYSTEM)
                for r in current.values()
                if r.status == "granted" and r.valid_until is not None and r.valid_until <= now
            ]
            if changes:
                await store.save_changes(conn, changes, None, self._topic)
        self._metrics.count_changes(changes)
        return len(changes)

    async def _purge_documentation(self, now: datetime) -> int:
        """Ledger rows of opt-in consents no longer in force, past retention after last use.

        Objections to opt-out purposes are never purged: purging them would re-allow contact.
        The current-state row stays too (it holds no personal data and carries the version).
        """
        purged = 0
        for purpose in self._catalog.purposes.values():
            if purpose.mechanism is not Mechanism.OPT_IN or purpose.retention_days is None:
                continue
            result = await self._pool.execute(
                "DELETE FROM consent.ledger l USING consent.consents c "
                "WHERE l.subject_id = c.subject_id AND l.purpose = c.purpose AND l.channel = c.channel "
                "AND c.purpose = $1 AND c.status <> 'granted' "
                "AND greatest(c.occurred_at, coalesce(c.last_used_at, c.occurred_at)) < $2",
                purpose.code,
                now - timedelta(days=purpose.retention_days),
            )
            purged += int(result.split()[-1])
        return purged
