"""A projector's start prepares its tables: with the DDL unchanged it takes no lock a reader waits for,
or deadlocks with."""

from __future__ import annotations

from unittest import mock

import asyncpg
import pytest

from samtykke.domain.catalog import load_catalog
from samtykke.projections.domains import DOMAINS
from samtykke.projections.projection import Projection

from .conftest import ProjectionPlatform


async def _prepare(platform: ProjectionPlatform, domain: str) -> None:
    conn = await asyncpg.connect(DOMAINS[domain].dsn(platform.settings))
    try:
        await conn.execute("SET lock_timeout = '3s'")  # waiting on a reader fails the test, not hangs it
        await DOMAINS[domain].projection(domain, platform.settings, load_catalog()).prepare(conn)
    finally:
        await conn.close()


@pytest.mark.parametrize("domain", list(DOMAINS))
async def test_a_start_with_unchanged_tables_does_not_wait_for_readers_of_the_views(
    platform: ProjectionPlatform, domain: str
) -> None:
    reader = await platform.owner()
    try:
        views = await reader.fetch("SELECT table_name FROM information_schema.views WHERE table_schema = $1", domain)
        tables = await reader.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            domain,
        )
        assert views and tables
        async with reader.transaction():
            # a reader mid-query holds every view and table it reads, shared, until it ends
            for relation in [*views, *tables]:
                await reader.fetch(f"SELECT * FROM {domain}.{relation['table_name']} LIMIT 1")
            await _prepare(platform, domain)  # the provisioning prepared them already: nothing to lock
    finally:
        await reader.close()


async def test_changed_ddl_is_applied_at_the_next_start(platform: ProjectionPlatform) -> None:
    ddl = Projection.ddl
    extended = mock.patch.object(
        Projection, "ddl", lambda self: ddl(self) + f"\nCREATE TABLE IF NOT EXISTS {self.schema}.added (x int);"
    )
    with extended:
        await _prepare(platform, "marketing")
    conn = await platform.owner()
    try:
        assert await conn.fetchval("SELECT to_regclass('marketing.added')") is not None
    finally:
        await conn.close()
