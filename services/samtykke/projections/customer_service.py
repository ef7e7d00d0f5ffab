"""Customer-service projection: each subject's current consents and its whole timeline.

The timeline row of a change (keyed by its version) is inserted once; only changes whose row
was new update the current state. The timeline says whether evidence is on file (the evidence itself
stays in the consent service's ledger); erasure drops it there, so it turns false here too,
whichever topic's event arrives first.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from samtykke.domain.consent_keys import ConsentKey
from samtykke.domain.events import ConsentChanged
from samtykke.domain.projection import NO_CHANNEL, latest_changes, timeline_evidence

from .messages import Applied, Batch
from .projection import Projection, columns, insert_rows, unnest

_CURRENT = (
    "subject_id, purpose, channel, status, previous_status, version, occurred_at, recorded_at, "
    "valid_until, last_used_at, source, actor_kind, notice_version"
)
_CURRENT_ROWS = unnest("text text text text text bigint timestamptz timestamptz timestamptz timestamptz text text text")
_SUBJECT_ROWS = unnest("text text text text boolean bigint timestamptz")
_TIMELINE_ROWS = unnest(
    "text text text bigint text text text timestamptz timestamptz timestamptz text text text boolean"
)


class CustomerServiceProjection(Projection):
    domain = "customer_service"

    async def apply(self, conn: asyncpg.Connection, batch: Batch) -> Applied:
        s = self.schema
        subjects = await self.fresh_subjects(conn, batch.subjects)
        await insert_rows(
            conn,
            f"INSERT INTO {s}.subjects AS t (subject_id, kind, country, account_id, erased, version, "
            f"updated_at) {_SUBJECT_ROWS} ON CONFLICT (subject_id) DO UPDATE SET "
            "kind = EXCLUDED.kind, country = EXCLUDED.country, account_id = EXCLUDED.account_id, "
            "erased = EXCLUDED.erased, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at "
            "WHERE EXCLUDED.version > t.version",
            [(k, e.kind, e.country, e.account_id, e.erased, e.version, e.occurred_at) for k, e in subjects],
            7,
        )
        erased = [k for k, e in subjects if e.erased]
        if erased:
            await conn.execute(
                f"UPDATE {s}.timeline SET evidence_on_file = false "
                "WHERE subject_id = ANY($1::text[]) AND evidence_on_file",
                erased,
            )
        new = await self._insert_timeline(conn, batch.changes)
        await insert_rows(
            conn,
            f"INSERT INTO {s}.consents AS t ({_CURRENT}) {_CURRENT_ROWS} "
            "ON CONFLICT (subject_id, purpose, channel) DO UPDATE SET status = EXCLUDED.status, "
            "previous_status = EXCLUDED.previous_status, version = EXCLUDED.version, "
            "occurred_at = EXCLUDED.occurred_at, recorded_at = EXCLUDED.recorded_at, "
            "valid_until = EXCLUDED.valid_until, last_used_at = EXCLUDED.last_used_at, "
            "source = EXCLUDED.source, actor_kind = EXCLUDED.actor_kind, "
            "notice_version = EXCLUDED.notice_version, applied_at = clock_timestamp() "
            "WHERE EXCLUDED.version > t.version",
            [
                (
                    c.subject_id,
                    c.purpose,
                    c.channel or NO_CHANNEL,
                    c.status,
                    c.previous_status,
                    c.version,
                    c.occurred_at,
                    c.recorded_at,
                    c.valid_until,
                    c.last_used_at,
                    c.source,
                    c.actor_kind,
                    c.notice_version,
                )
                for c in latest_changes(new).values()
            ],
            13,
        )
        return Applied(new, len(subjects))

    async def remove(self, conn: asyncpg.Connection, keys: Sequence[ConsentKey]) -> None:
        # the timeline of a purged consent is its documentation: it goes with the current state
        await self.delete_consents(conn, "consents", keys)
        await self.delete_consents(conn, "timeline", keys)

    async def _insert_timeline(self, conn: asyncpg.Connection, changes: list[ConsentChanged]) -> list[ConsentChanged]:
        entries = {(c.subject_id, c.purpose, c.channel or NO_CHANNEL, c.version): c for c in changes}
        if not entries:
            return []
        erased = {
            r["subject_id"]
            for r in await conn.fetch(
                f"SELECT subject_id FROM {self.schema}.subjects WHERE erased AND subject_id = ANY($1::text[])",
                list({k[0] for k in entries}),
            )
        }
        rows = [
            (
                *k,
                c.event_id,
                c.status,
                c.previous_status,
                c.occurred_at,
                c.recorded_at,
                c.valid_until,
                c.source,
                c.actor_kind,
                c.notice_version,
                timeline_evidence(c, c.subject_id in erased),
            )
            for k, c in entries.items()
        ]
        inserted = await conn.fetch(
            f"INSERT INTO {self.schema}.timeline (subject_id, purpose, channel, version, event_id, status, "
            "previous_status, occurred_at, recorded_at, valid_until, source, actor_kind, notice_version, "
            f"evidence_on_file) {_TIMELINE_ROWS} "
            "ON CONFLICT DO NOTHING RETURNING subject_id, purpose, channel, version",
            *columns(rows, 14),
        )
        new = {(r["subject_id"], r["purpose"], r["channel"], r["version"]) for r in inserted}
        return [c for k, c in entries.items() if k in new]
