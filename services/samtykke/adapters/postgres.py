"""PostgreSQL connection pools and idempotent schema migration."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for codec in ("json", "jsonb"):
        await conn.set_type_codec(codec, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def rollback_only(conn: asyncpg.Connection) -> None:
    """A cheaper pool reset than asyncpg's (UNLISTEN, advisory unlock, CLOSE ALL, RESET ALL on every
    release: a round trip and four statements per request) for pools whose users leave no session
    state behind, or undo it themselves: only an abandoned transaction is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs)
    assert pool is not None
    return pool


async def apply_schema(pool: asyncpg.Pool, sql: str, lock_id: int) -> None:
    """Run an idempotent DDL script under an advisory lock so replicas do not race."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id)
        await conn.execute(sql)
