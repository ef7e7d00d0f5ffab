"""`samtykke consent migrate-topic`: fill a new changes topic from the ledger's current state.

`consent.changes.v2` is a new contract (keyed by the consent, partitioned by subject, compacted),
so it starts empty. This enqueues, through the outbox, one record per documented consent: every
key of a subject not erased whose ledger still holds the event of its current version, as that
event (its own event id, version and times; no evidence text, as on every record). Erased
subjects and purged consents get none: their absence is what the old topic's copy owed the law.

Each batch of subjects is locked (`FOR SHARE`) before its state is read, so a decision recorded
meanwhile commits either before the read (and is the event enqueued) or after this batch (and its
outbox row follows ours): per consent, the topic's last record is always the current one. The
relay publishes the rows; a rerun enqueues them again, which consumers' version guards ignore.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from samtykke.adapters.postgres import create_pool
from samtykke.adapters.settings import Settings
from samtykke.domain.consent_keys import consent_key
from samtykke.domain.events import ConsentChanged

from .ports import OUTBOX_CONSENT

log = logging.getLogger(__name__)
BATCH = 1000

LOCK_SUBJECTS = (
    "SELECT subject_id FROM consent.subjects WHERE erased_at IS NULL AND subject_id > $1 "
    "ORDER BY subject_id LIMIT $2 FOR SHARE"
)
# read in a statement of its own, after the locks: it sees every decision committed before them
LATEST_EVENTS = (
    "SELECT s.subject_id, s.kind, s.country, s.account_id, l.event_id, l.purpose, l.channel, l.status, "
    "l.previous_status, l.version, l.occurred_at, l.recorded_at, l.valid_until, l.last_used_at, l.source, "
    "l.actor_kind, l.notice_version, l.evidence_ref IS NOT NULL AS evidence_on_file, l.correlation_id "
    "FROM consent.consents c JOIN consent.subjects s USING (subject_id) "
    "JOIN consent.ledger l ON l.subject_id = c.subject_id AND l.purpose = c.purpose AND l.channel = c.channel "
    "AND l.version = c.version "
    "WHERE c.subject_id = ANY($1::uuid[]) ORDER BY c.subject_id, c.purpose, c.channel"
)
ENQUEUE = (
    "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    "SELECT $1, k, $2, p FROM unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS t(k, p, ord) ORDER BY ord"
)


@dataclass(frozen=True)
class MigrationReport:
    subjects: int
    consents: int


def latest_event(row: asyncpg.Record) -> ConsentChanged:
    return ConsentChanged(
        event_id=str(row["event_id"]),
        subject_id=str(row["subject_id"]),
        subject_kind=row["kind"],
        account_id=row["account_id"],
        country=row["country"],
        purpose=row["purpose"],
        channel=row["channel"] or None,
        status=row["status"],
        previous_status=row["previous_status"],
        version=row["version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        valid_until=row["valid_until"],
        source=row["source"],
        actor_kind=row["actor_kind"],
        notice_version=row["notice_version"],
        evidence_ref=None,
        correlation_id=row["correlation_id"],
        last_used_at=row["last_used_at"],
        evidence_on_file=row["evidence_on_file"],
    )


async def migrate(pool: asyncpg.Pool, topic: str, batch: int = BATCH) -> MigrationReport:
    """Enqueue the current state on `topic`, batch by batch of subjects (one transaction each)."""
    after, subjects, consents, started = UUID(int=0), 0, 0, time.monotonic()
    while True:
        async with pool.acquire() as conn, conn.transaction():
            ids = [r["subject_id"] for r in await conn.fetch(LOCK_SUBJECTS, after, batch)]
            if not ids:
                return MigrationReport(subjects, consents)
            events = [latest_event(r) for r in await conn.fetch(LATEST_EVENTS, ids)]
            keys = [consent_key(e.subject_id, e.purpose, e.channel) for e in events]
            await conn.execute(ENQUEUE, topic, OUTBOX_CONSENT, keys, [e.as_record() for e in events])
        after, subjects, consents = ids[-1], subjects + len(ids), consents + len(events)
        rate = consents / max(time.monotonic() - started, 1e-6)
        log.info("enqueued %d consents of %d subjects for %s (%.0f/s)", consents, subjects, topic, rate)


async def run(settings: Settings) -> MigrationReport:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return await migrate(pool, settings.topic_changes)
    finally:
        await pool.close()
