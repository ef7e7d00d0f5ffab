"""Creates each domain's login role and schema with the owner login, least privilege first.

Each role may log in, owns its own schema (so it can create and write tables there) and holds
nothing else: no privilege on `consent` or on another domain's schema, no CREATE on the
database. The owner login is made a member of each role, so it can create rebuild schemas on
the role's behalf and rename schemas at a rebuild's switch-over. Idempotent.
"""

from __future__ import annotations

import contextlib
import logging

import asyncpg

from samtykke.adapters.settings import Settings
from samtykke.domain.catalog import load_catalog

from .domains import DOMAINS, Domain
from .projection import checked_schema

log = logging.getLogger(__name__)


async def ensure_role(owner: asyncpg.Connection, domain: Domain, password: str) -> None:
    exists = await owner.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", domain.role)
    if not exists:
        # a concurrent provision may create it first (roles are cluster-wide)
        with contextlib.suppress(asyncpg.DuplicateObjectError):
            await owner.execute(f'CREATE ROLE "{domain.role}" LOGIN NOINHERIT')
    statement = await owner.fetchval(
        "SELECT format('ALTER ROLE %I LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %L', $1::text, $2::text)",
        domain.role,
        password,
    )
    await owner.execute(statement)
    member = await owner.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", domain.role)
    if not member:
        await owner.execute(f'GRANT "{domain.role}" TO CURRENT_USER')


async def create_schema(owner: asyncpg.Connection, domain: Domain, schema: str) -> None:
    schema = checked_schema(schema)
    await owner.execute(f'CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION "{domain.role}"')
    await owner.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")


async def revoke_elsewhere(owner: asyncpg.Connection, domain: Domain) -> None:
    """Nothing outside its own schema: strip anything granted on other schemas or the database."""
    database = await owner.fetchval("SELECT current_database()")
    await owner.execute(f'REVOKE CREATE, TEMPORARY ON DATABASE "{database}" FROM "{domain.role}"')
    others = await owner.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' "
        "AND nspowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)",
        domain.role,
    )
    for row in others:
        schema = row["nspname"]
        await owner.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{domain.role}"')
        await owner.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM "{domain.role}"')


async def create_tables(settings: Settings, domain: Domain) -> None:
    """The tables and views, created by the domain's own login so that it owns them."""
    conn = await asyncpg.connect(domain.dsn(settings))
    try:
        await domain.projection(domain.name, settings, load_catalog()).prepare(conn)
    finally:
        await conn.close()


async def provision(settings: Settings, domains: list[str] | None = None) -> None:
    owner = await asyncpg.connect(settings.database_url)
    try:
        for name in domains or list(DOMAINS):
            domain = DOMAINS[name]
            await ensure_role(owner, domain, domain.password(settings))
            await create_schema(owner, domain, domain.name)
            await revoke_elsewhere(owner, domain)
            await create_tables(settings, domain)
            log.info("provisioned role %s and schema %s", domain.role, domain.name)
    finally:
        await owner.close()
