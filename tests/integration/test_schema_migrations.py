"""One-off data changes in the consent schema run once: an outbox written before the topics stopped
carrying evidence is scrubbed at the first start, and later starts do not scan the outbox again;
subjects erased before holdings were recorded get theirs."""

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
        marked = await pool.fetchval(
            "SELECT count(*) FROM consent.applied_migrations WHERE name = 'outbox-without-evidence'"
        )
        untouched = await pool.fetchval(INSERT, OLD_PAYLOAD)
        await create_schema(pool)
        kept = await pool.fetchval("SELECT payload FROM consent.outbox WHERE id = $1", untouched)
        assert kept == OLD_PAYLOAD and marked == 1
    finally:
        await pool.close()


async def test_subjects_erased_before_holdings_were_recorded_held_their_identifiers_until_erasure(
    fresh_database: str,
) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=2)
    try:
        await create_schema(pool)
        # a database from before holdings: an erased subject (hashes kept) and a live one, no holdings
        await pool.execute("DELETE FROM consent.applied_migrations WHERE name = 'identifier-holdings-of-erased'")
        erased, live = await pool.fetchval(SUBJECT, "p1", "e1", True), await pool.fetchval(SUBJECT, "p2", None, False)
        await create_schema(pool)
        rows = await pool.fetch(
            "SELECT subject_id, kind, hash, since, until, reason FROM consent.identifier_holdings ORDER BY kind"
        )
        created, erased_at = await pool.fetchrow(
            "SELECT created_at, erased_at FROM consent.subjects WHERE subject_id = $1", erased
        )
        assert [tuple(r) for r in rows] == [
            (erased, "email", "e1", created, erased_at, "erased"),
            (erased, "phone", "p1", created, erased_at, "erased"),
        ]
        assert live not in {r["subject_id"] for r in rows}  # it still holds its phone
        # applied once: a later start does not scan the subjects again (erasures record their own)
        await pool.fetchval(SUBJECT, "p3", None, True)
        await create_schema(pool)
        assert await pool.fetchval("SELECT count(*) FROM consent.identifier_holdings") == 2
    finally:
        await pool.close()


SUBJECT = (
    "INSERT INTO consent.subjects (subject_id, kind, country, phone_hash, email_hash, erased_at) "
    "VALUES (gen_random_uuid(), 'consumer', 'DK', $1, $2, CASE WHEN $3 THEN now() + interval '1 day' END) "
    "RETURNING subject_id"
)
