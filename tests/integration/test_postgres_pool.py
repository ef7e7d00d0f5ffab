"""Every pool bounds its sessions: a forgotten transaction, a held lock or a hung statement ends
in an error the caller retries, not in a stage that waits for ever."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from samtykke.adapters.postgres import SESSION_BOUNDS, create_pool


async def test_pool_sessions_carry_the_bounds(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            shown = {name: await conn.fetchval(f"SHOW {name}") for name in SESSION_BOUNDS}
    finally:
        await pool.close()
    assert shown == {
        "statement_timeout": "30s",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "1min",
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }


async def test_a_transaction_left_idle_is_ended_by_the_server(fresh_database: str) -> None:
    pool = await create_pool(
        fresh_database, min_size=1, max_size=1, server_settings={"idle_in_transaction_session_timeout": "500ms"}
    )
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("SELECT 1")
            await asyncio.sleep(1.5)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                await conn.execute("SELECT 1")
    finally:
        pool.terminate()


async def test_a_lock_wait_gives_up(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=2, max_size=2, server_settings={"lock_timeout": "300ms"})
    try:
        async with pool.acquire() as holder, pool.acquire() as waiter:
            await holder.execute("CREATE TABLE held (id int)")
            async with holder.transaction():
                await holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await waiter.execute("SELECT * FROM held")
    finally:
        await pool.close()
