"""Marketing projection: per subject × marketing purpose × channel, is marketing allowed, until when.

Rows come from `samtykke.domain.projection.marketing_consent`; the `marketable` view evaluates
valid-until against now(), so a lapsed grant leaves the list before the sweeper's event arrives.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from samtykke.domain.consent_keys import ConsentKey
from samtykke.domain.events import ConsentChanged
from samtykke.domain.model import Mechanism
from samtykke.domain.projection import change_key, guarded, latest_changes, marketing_consent

from .messages import Applied, Batch
from .projection import Projection, insert_rows, unnest

_CONSENT_COLUMNS = (
    "subject_id, purpose, channel, mechanism, status, in_force, valid_until, lapse_date, country, "
    "kind, account_id, version, occurred_at"
)
_CONSENT_ROWS = unnest("text text text text text boolean timestamptz date text text text bigint timestamptz")
_SUBJECT_ROWS = unnest("text text text text boolean bigint")


class MarketingProjection(Projection):
    domain = "marketing"

    async def refresh_reference_data(self, conn: asyncpg.Connection) -> None:
        rows = [
            (p.code, kind.value, channel.value, p.mechanism.value)
            for p in self.catalog.purposes.values()
            if p.marketing and p.mechanism is Mechanism.OPT_OUT
            for kind, channels in p.channels.items()
            for channel in channels
        ]
        await conn.execute(f"DELETE FROM {self.schema}.purpose_channels")
        await conn.executemany(
            f"INSERT INTO {self.schema}.purpose_channels (purpose, kind, channel, mechanism) VALUES ($1, $2, $3, $4)",
            rows,
        )

    async def apply(self, conn: asyncpg.Connection, batch: Batch) -> Applied:
        s = self.schema
        subjects = await self.fresh_subjects(conn, batch.subjects)
        await insert_rows(
            conn,
            f"INSERT INTO {s}.subjects AS t (subject_id, kind, country, account_id, erased, version) "
            f"{_SUBJECT_ROWS} ON CONFLICT (subject_id) DO UPDATE SET kind = EXCLUDED.kind, "
            "country = EXCLUDED.country, account_id = EXCLUDED.account_id, erased = EXCLUDED.erased, "
            "version = EXCLUDED.version WHERE EXCLUDED.version > t.version",
            [(k, e.kind, e.country, e.account_id, e.erased, e.version) for k, e in subjects],
            6,
        )
        relevant = [c for c in batch.changes if marketing_consent(self.catalog, c) is not None]
        fresh = guarded(relevant, await self._stored_versions(conn, relevant))
        rows = [marketing_consent(self.catalog, c) for c in latest_changes(fresh).values()]
        await insert_rows(
            conn,
            f"INSERT INTO {s}.consents AS t ({_CONSENT_COLUMNS}) {_CONSENT_ROWS} "
            "ON CONFLICT (subject_id, purpose, channel) DO UPDATE SET mechanism = EXCLUDED.mechanism, "
            "status = EXCLUDED.status, in_force = EXCLUDED.in_force, valid_until = EXCLUDED.valid_until, "
            "lapse_date = EXCLUDED.lapse_date, country = EXCLUDED.country, kind = EXCLUDED.kind, "
            "account_id = EXCLUDED.account_id, version = EXCLUDED.version, "
            "occurred_at = EXCLUDED.occurred_at, applied_at = clock_timestamp() "
            "WHERE EXCLUDED.version > t.version",
            [
                (
                    r.subject_id,
                    r.purpose,
                    r.channel,
                    r.mechanism,
                    r.status,
                    r.in_force,
                    r.valid_until,
                    r.lapse_date,
                    r.country,
                    r.kind,
                    r.account_id,
                    r.version,
                    r.occurred_at,
                )
                for r in rows
                if r is not None
            ],
            13,
        )
        return Applied(fresh, len(subjects))

    async def remove(self, conn: asyncpg.Connection, keys: Sequence[ConsentKey]) -> None:
        await self.delete_consents(conn, "consents", keys)

    async def _stored_versions(
        self, conn: asyncpg.Connection, changes: list[ConsentChanged]
    ) -> dict[tuple[str, str, str], int]:
        keys = sorted({change_key(c) for c in changes})
        if not keys:
            return {}
        rows = await conn.fetch(
            f"SELECT t.subject_id, t.purpose, t.channel, t.version FROM {self.schema}.consents t "
            "JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(subject_id, purpose, channel) "
            "USING (subject_id, purpose, channel) FOR UPDATE OF t",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
        )
        return {(r["subject_id"], r["purpose"], r["channel"]): r["version"] for r in rows}
