"""Analytics projection: pseudonymous consent state, traffic-data use, daily status changes.

Subjects and accounts are stored only as keyed hashes (`pseudonym`, `account_pseudonym`) under
the analytics key, which only this projector holds; no subject id or identifier is written.
Each change is counted once: its `status_changes` row (keyed by version) is inserted once, and
only the changes whose insert succeeded feed the daily counters and the current state.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent_keys import ConsentKey
from samtykke.domain.events import ConsentChanged
from samtykke.domain.projection import (
    NO_CHANNEL,
    account_pseudonym,
    daily_deltas,
    latest_changes,
    pseudonym,
)

from .messages import Applied, Batch
from .projection import Projection, columns, insert_rows, unnest

_SUBJECT_ROWS = unnest("text text text text boolean bigint")
_FACT_ROWS = unnest("text text text bigint text text text timestamptz")
_DAILY_ROWS = unnest("date text text text bigint bigint")
_CONSENT_ROWS = unnest("text text text text timestamptz bigint timestamptz")

FactKey = tuple[str, str, str, int]


class AnalyticsProjection(Projection):
    domain = "analytics"

    def __init__(self, schema: str, catalog: PurposeCatalog, pseudonym_key: bytes) -> None:
        super().__init__(schema, catalog)
        self._key = pseudonym_key

    async def refresh_reference_data(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f"DELETE FROM {self.schema}.traffic_data_purposes")
        await conn.executemany(
            f"INSERT INTO {self.schema}.traffic_data_purposes (purpose) VALUES ($1)",
            [(p.code,) for p in self.catalog.traffic_data_purposes()],
        )

    async def remove(self, conn: asyncpg.Connection, keys: Sequence[ConsentKey]) -> None:
        # a purged consent leaves the current state. Its pseudonymous status changes stay: they are
        # what makes the daily counts idempotent (a replay must not count a change twice), and like
        # those counts a rebuild after compaction cannot give them back
        await conn.execute(
            f"DELETE FROM {self.schema}.consents t USING unnest($1::text[], $2::text[], $3::text[]) "
            "AS k(pseudonym, purpose, channel) "
            "WHERE t.pseudonym = k.pseudonym AND t.purpose = k.purpose AND t.channel = k.channel",
            [pseudonym(self._key, k.subject_id) for k in keys],
            [k.purpose for k in keys],
            [k.channel or NO_CHANNEL for k in keys],
        )

    def _fact_key(self, change: ConsentChanged) -> FactKey:
        return (pseudonym(self._key, change.subject_id), change.purpose, change.channel or NO_CHANNEL, change.version)

    async def apply(self, conn: asyncpg.Connection, batch: Batch) -> Applied:
        s = self.schema
        subjects = await self.fresh_subjects(
            conn, batch.subjects, key="pseudonym", key_of=lambda e: pseudonym(self._key, e.subject_id)
        )
        await insert_rows(
            conn,
            f"INSERT INTO {s}.subjects AS t (pseudonym, kind, country, account_pseudonym, erased, version) "
            f"{_SUBJECT_ROWS} ON CONFLICT (pseudonym) DO UPDATE SET kind = EXCLUDED.kind, "
            "country = EXCLUDED.country, account_pseudonym = EXCLUDED.account_pseudonym, "
            "erased = EXCLUDED.erased, version = EXCLUDED.version WHERE EXCLUDED.version > t.version",
            [
                (k, e.kind, e.country, account_pseudonym(self._key, e.account_id), e.erased, e.version)
                for k, e in subjects
            ],
            6,
        )
        new = await self._insert_facts(conn, batch.changes)
        await insert_rows(
            conn,
            f"INSERT INTO {s}.daily_status_changes AS t (day, purpose, status, country, entered, exited) "
            f"{_DAILY_ROWS} ON CONFLICT (day, purpose, status, country) DO UPDATE "
            "SET entered = t.entered + EXCLUDED.entered, exited = t.exited + EXCLUDED.exited",
            [(*key, entered, exited) for key, (entered, exited) in daily_deltas(new).items()],
            6,
        )
        await insert_rows(
            conn,
            f"INSERT INTO {s}.consents AS t (pseudonym, purpose, channel, status, valid_until, version, "
            f"occurred_at) {_CONSENT_ROWS} ON CONFLICT (pseudonym, purpose, channel) "
            "DO UPDATE SET status = EXCLUDED.status, valid_until = EXCLUDED.valid_until, "
            "version = EXCLUDED.version, occurred_at = EXCLUDED.occurred_at, applied_at = clock_timestamp() "
            "WHERE EXCLUDED.version > t.version",
            [
                (*self._fact_key(c)[:3], c.status, c.valid_until, c.version, c.occurred_at)
                for c in latest_changes(new).values()
            ],
            7,
        )
        return Applied(new, len(subjects))

    async def _insert_facts(self, conn: asyncpg.Connection, changes: list[ConsentChanged]) -> list[ConsentChanged]:
        """Insert each change's fact row; the changes whose row was new, in batch order."""
        facts = {self._fact_key(c): c for c in changes}
        if not facts:
            return []
        rows = [(*k, c.status, c.previous_status, c.country, c.occurred_at) for k, c in facts.items()]
        inserted = await conn.fetch(
            f"INSERT INTO {self.schema}.status_changes (pseudonym, purpose, channel, version, status, "
            f"previous_status, country, occurred_at) {_FACT_ROWS} "
            "ON CONFLICT DO NOTHING RETURNING pseudonym, purpose, channel, version",
            *columns(rows, 8),
        )
        new = {(r["pseudonym"], r["purpose"], r["channel"], r["version"]) for r in inserted}
        return [c for k, c in facts.items() if k in new]
