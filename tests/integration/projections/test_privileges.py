"""Least privilege and privacy: a projector's role writes only its own schema, and the analytics
schema holds no subject id, account id or identifier (clear or hashed) in any column."""

from __future__ import annotations

import asyncpg
import pytest

from samtykke.projections.domains import DOMAINS

from .conftest import ProjectionPlatform
from .history import RandomHistory, register

FORBIDDEN_WRITES = (
    "INSERT INTO analytics.traffic_data_purposes (purpose) VALUES ('sneaky')",
    "DELETE FROM customer_service.timeline",
    "UPDATE consent.subjects SET kind = 'business'",
    "CREATE TABLE analytics.sneaky (x int)",
    "CREATE SCHEMA sneaky",
    "SELECT count(*) FROM consent.subjects",
)


async def test_a_projector_role_cannot_write_another_domains_schema(platform: ProjectionPlatform) -> None:
    conn = await asyncpg.connect(DOMAINS["marketing"].dsn(platform.settings))
    try:
        own = conn.transaction()  # its own schema: yes (then undone)
        await own.start()
        await conn.execute("INSERT INTO marketing.subjects VALUES ('s', 'consumer', 'DK', NULL, false, 1)")
        await own.rollback()
        for statement in FORBIDDEN_WRITES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_analytics_holds_no_subject_id_and_no_identifier(platform: ProjectionPlatform) -> None:
    await platform.start("analytics")
    client = platform.consent.client
    people = [
        await register(
            client,
            "consumer",
            "DK",
            None,
            {"phone": "+45 20 30 40 50", "email": "Karen.Holm@example.dk", "national_id": "010190-1234"},
        ),
        await register(client, "business", "SE", "ACME-77", {"email": "admin@acme.se"}),
        await register(client, "employee", "SE", "ACME-77", {"phone": "070-123 45 67", "email": "ola@acme.se"}),
        await register(client, "consumer", "NO", None, {"phone": "+47 912 34 567"}),
    ]
    history = RandomHistory(client, people, seed=5)
    await history.decide(40)
    await history.lifecycle(erasures=1)
    await platform.caught_up("analytics")

    conn = await platform.owner()
    try:
        relations = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'"
        )
        dump = ""
        for relation in relations:
            rows = await conn.fetch(f"SELECT t::text AS row FROM analytics.{relation['table_name']} t")
            dump += "\n".join(r["row"] for r in rows) + "\n"
        assert await conn.fetchval("SELECT count(*) FROM analytics.subjects") == len(people)
        forbidden = [p.subject_id for p in people] + ["ACME-77"]
        forbidden += [str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM consent.ledger")]
        for row in await conn.fetch("SELECT phone_hash, email_hash, national_id_hash FROM consent.subjects"):
            forbidden += [h for h in row.values() if h]
        forbidden += [
            "4520304050",
            "20304050",
            "karen.holm",
            "Karen.Holm",
            "0101901234",
            "010190-1234",
            "admin@acme.se",
            "46701234567",
            "701234567",
            "ola@acme.se",
            "4791234567",
            "91234567",
        ]
        assert len(forbidden) > 20
        for value in forbidden:
            assert value not in dump, "an identifier reached the analytics schema"
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics'"
            )
        }
        assert not columns & {"subject_id", "account_id", "event_id", "phone_hash", "email_hash", "national_id_hash"}
    finally:
        await conn.close()
