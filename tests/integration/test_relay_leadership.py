"""Relay leadership on the real PostgreSQL: a clean stop hands over at once; a lost leader is fenced."""

from __future__ import annotations

import time

from samtykke.adapters.postgres import create_pool
from samtykke.consent.leadership import FENCE_SECONDS, RelayLeadership
from samtykke.consent.store import create_schema


async def test_a_leader_that_resigned_lets_the_next_take_office_at_once(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=3)
    try:
        await create_schema(pool)
        leadership = RelayLeadership(pool)
        async with leadership.lead() as first:
            await first.resign()
        began = time.monotonic()
        async with leadership.lead() as second:
            second.check()
            assert second.epoch == first.epoch + 1
        assert time.monotonic() - began < FENCE_SECONDS / 2
    finally:
        await pool.close()


async def test_a_new_leader_waits_out_the_fence_of_one_that_did_not_resign(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, min_size=1, max_size=3)
    try:
        await create_schema(pool)
        leadership = RelayLeadership(pool)
        async with leadership.lead() as first:
            first.check()  # left without resigning, as a process that lost its session would
        began = time.monotonic()
        async with leadership.lead() as second:
            assert second.epoch == first.epoch + 1
        assert time.monotonic() - began >= FENCE_SECONDS - 1.5
    finally:
        await pool.close()
