"""`samtykke projections rebuild DOMAIN`: fresh tables from offset 0, then an atomic switch, while
the live projector keeps applying new decisions; afterwards the tables equal the recomputation."""

from __future__ import annotations

import asyncio
import random

from samtykke.devstack.process import samtykke_command

from .conftest import ProjectionPlatform, settings_env
from .history import RandomHistory, population
from .oracle import assert_equals_recomputation


async def test_rebuild_switches_readers_to_fresh_tables_while_the_projector_runs(platform: ProjectionPlatform) -> None:
    await platform.start("customer_service")
    client = platform.consent.client
    history = RandomHistory(client, await population(client, random.Random(41)), seed=41)
    await history.decide(120)
    await platform.caught_up("customer_service")
    conn = await platform.owner()
    try:
        schema_before = await conn.fetchval("SELECT oid FROM pg_namespace WHERE nspname = 'customer_service'")
        rebuild = await asyncio.create_subprocess_exec(
            *samtykke_command("projections", "rebuild", "customer_service"),
            env=settings_env(platform.settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        finished = asyncio.create_task(rebuild.communicate())
        while not finished.done():  # the live projector keeps applying during the rebuild and its switch
            await history.decide(3)
        output = finished.result()[0].decode()
        assert rebuild.returncode == 0, output
        assert "rebuild customer_service: " in output and "events (100%)" in output  # log lines off a terminal
        await history.decide(20)  # and after it, into the rebuilt tables
        await history.lifecycle(erasures=1)
        await platform.caught_up("customer_service")

        schemas = [
            r["nspname"]
            for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'customer\\_service%'")
        ]
        assert schemas == ["customer_service"]
        assert await conn.fetchval("SELECT oid FROM pg_namespace WHERE nspname = 'customer_service'") != schema_before
        await assert_equals_recomputation(conn, b"", "customer_service")
    finally:
        await conn.close()
