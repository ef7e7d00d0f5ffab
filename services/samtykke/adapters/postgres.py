"""PostgreSQL connection pools and idempotent schema migration."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import orjson


async def _init_connection(conn: asyncpg.Connection) -> None:
    # orjson reads JSON several times faster than the standard library: the relay decodes every
    # outbox payload, and json.loads was a quarter of its time during a backlog
    for codec in ("json", "jsonb"):
        await conn.set_type_codec(codec, encoder=json.dumps, decoder=orjson.loads, schema="pg_catalog")


async def rollback_only(conn: asyncpg.Connection) -> None:
    """A cheaper pool reset than asyncpg's (UNLISTEN, advisory unlock, CLOSE ALL, RESET ALL on every
    release: a round trip and four statements per request) for pools whose users leave no session
    state behind, or undo it themselves: only an abandoned transaction is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# Bounds on every session, so a hung peer or a forgotten transaction surfaces as an error the caller
# retries instead of a stage that waits for ever (a relay leader holding its lock, a projector batch):
# the server drops a session idle inside a transaction, gives up on a lock or a statement, and probes a
# silent client; the client gives up on a command the server never answers.
SESSION_BOUNDS = {
    "statement_timeout": "30s",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "60s",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
COMMAND_TIMEOUT_SECONDS = 60.0


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    server_settings = {**SESSION_BOUNDS, **kwargs.pop("server_settings", {})}
    kwargs.setdefault("command_timeout", COMMAND_TIMEOUT_SECONDS)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings=server_settings,
        **kwargs,
    )
    assert pool is not None
    return pool


async def apply_schema(pool: asyncpg.Pool, sql: str, lock_id: int) -> None:
    """Run an idempotent DDL script under an advisory lock so replicas do not race."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id)
        await conn.execute(sql)
