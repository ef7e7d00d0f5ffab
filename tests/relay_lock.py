"""Ending the relay leader's database session from a test, as a crashed leader or a killed connection would."""

from __future__ import annotations

import asyncpg

from samtykke.consent.leadership import RELAY_LOCK


async def terminate_relay_leader(database_url: str) -> int:
    """Terminate the session holding the relay lock (a bigint advisory key: classid high, objid low)."""
    conn = await asyncpg.connect(database_url)
    try:
        terminated: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            RELAY_LOCK >> 32,
            RELAY_LOCK & 0xFFFFFFFF,
        )
        return terminated
    finally:
        await conn.close()
