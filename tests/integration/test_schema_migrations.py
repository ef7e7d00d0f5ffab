"""One-off data changes in the consent schema run once: an outbox written before the topics stopped
carrying evidence is scrubbed at the first start, and later starts do not scan the outbox again."""

from __future__ import annotations

from samtykke.adapters.postgres import create_pool
from samtykke.consent.store import create_schema

OLD_PAYLOAD = {"event_id": "e1", "evidence_ref": "web-session-4711"}
INSERT = (
    "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    "VALUES ('consent.changes.v2', 'k', 'ConsentChanged', $1::jsonb) RETURNING id"
)


async def test_the_outbox_loses_old_evidence_once(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=2)
    try:
        await create_schema(pool)
        # a database from before the change: the migration has not run and a row holds the evidence
        await pool.execute("DELETE FROM consent.applied_migrations WHERE name = 'outbox-without-evidence'")
        old = await pool.fetchval(INSERT, OLD_PAYLOAD)
        await create_schema(pool)
        scrubbed = await pool.fetchval("SELECT payload FROM consent.outbox WHERE id = $1", old)
        assert scrubbed == {"event_id": "e1", "evidence_ref": None, "evidence_on_file": True}

        # recorded as applied: a later start leaves the outbox alone
        marked = await pool.fetchval("SELECT count(*) FROM consent.applied_migrations")
        untouched = await pool.fetchval(INSERT, OLD_PAYLOAD)
        await create_schema(pool)
        kept = await pool.fetchval("SELECT payload FROM consent.outbox WHERE id = $1", untouched)
        assert kept == OLD_PAYLOAD and marked == 1
    finally:
        await pool.close()
