"""The shape every domain projection shares: its own schema, idempotent DDL, a batch `apply`.

A projection writes only inside one transaction it is handed (the applier adds the offsets to
the same transaction). Subjects and consents are version-guarded: an event whose version does
not beat the stored one changes nothing, so duplicates, redelivery and replays are harmless.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, ClassVar

import asyncpg

from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent_keys import ConsentKey
from samtykke.domain.events import SubjectChanged
from samtykke.domain.projection import NO_CHANNEL, latest_subjects

from .messages import Applied, Batch

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# the digest of the DDL applied last to a schema
_APPLIED_TABLE = (
    "CREATE TABLE IF NOT EXISTS {schema}.applied_ddl "
    "(singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), digest text NOT NULL)"
)
_RECORD_APPLIED = (
    "INSERT INTO {schema}.applied_ddl (digest) VALUES ($1) "
    "ON CONFLICT (singleton) DO UPDATE SET digest = EXCLUDED.digest"
)


def checked_schema(name: str) -> str:
    """Schema names are spliced into SQL text, so only plain lower-case identifiers pass."""
    if not _SCHEMA_NAME.match(name):
        raise ValueError(f"not a plain schema name: {name!r}")
    return name


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows to column arrays, for `INSERT ... SELECT * FROM unnest($1::text[], ...)`."""
    return [[row[i] for row in rows] for i in range(width)]


def unnest(types: str) -> str:
    """`SELECT * FROM unnest($1::text[], …)` for space-separated column `types`: a batch of rows as
    one statement's column arrays. One statement costs the server one plan and one execution, where
    `executemany` costs one per row."""
    return "SELECT * FROM unnest(" + ", ".join(f"${i}::{t}[]" for i, t in enumerate(types.split(), 1)) + ")"


async def insert_rows(conn: asyncpg.Connection, statement: str, rows: Sequence[Sequence[Any]], width: int) -> None:
    """Run an `INSERT … {unnest(…)} …` over `rows` (nothing when there are none). Rows may not
    repeat a conflict key: one statement cannot update a row twice."""
    if rows:
        await conn.execute(statement, *columns(rows, width))


class Projection(abc.ABC):
    domain: ClassVar[str]

    def __init__(self, schema: str, catalog: PurposeCatalog) -> None:
        self.schema = checked_schema(schema)
        self.catalog = catalog

    def ddl(self) -> str:
        files = resources.files(__package__)
        text = "\n".join(
            files.joinpath(name).read_text("utf-8")
            for name in ("offsets.sql", "completeness.sql", f"{self.domain}.sql")
        )
        return text.replace("{schema}", self.schema)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Create or update the tables and views, then refresh reference data from the catalog.

        The DDL runs only when it differs from the DDL applied last (its digest is kept beside the
        tables). Running it takes exclusive locks (ALTER TABLE, CREATE OR REPLACE VIEW) on tables
        before views, where a reader of a view locks the view before its tables: a reader querying
        `marketable` while a replica started could deadlock with it and fail."""
        ddl = self.ddl()
        digest = hashlib.sha256(ddl.encode()).hexdigest()
        async with conn.transaction():
            if await self._applied_digest(conn) != digest:
                await conn.execute(ddl)
                await conn.execute(_APPLIED_TABLE.replace("{schema}", self.schema))
                await conn.execute(_RECORD_APPLIED.replace("{schema}", self.schema), digest)
            await self.refresh_reference_data(conn)

    async def _applied_digest(self, conn: asyncpg.Connection) -> str | None:
        if await conn.fetchval("SELECT to_regclass($1)", f"{self.schema}.applied_ddl") is None:
            return None
        digest: str | None = await conn.fetchval(f"SELECT digest FROM {self.schema}.applied_ddl")
        return digest

    async def refresh_reference_data(self, conn: asyncpg.Connection) -> None:  # noqa: B027 (optional hook)
        """Catalog facts the views need; none by default."""

    @abc.abstractmethod
    async def apply(self, conn: asyncpg.Connection, batch: Batch) -> Applied:
        """Apply a decoded batch inside the caller's transaction."""

    @abc.abstractmethod
    async def remove(self, conn: asyncpg.Connection, keys: Sequence[ConsentKey]) -> None:
        """Forget these consents (their tombstones arrived), inside the caller's transaction."""

    async def delete_consents(self, conn: asyncpg.Connection, table: str, keys: Sequence[ConsentKey]) -> None:
        """Delete the rows of `keys` from a table keyed (subject_id, purpose, channel)."""
        await conn.execute(
            f"DELETE FROM {self.schema}.{table} t USING unnest($1::text[], $2::text[], $3::text[]) "
            "AS k(subject_id, purpose, channel) "
            "WHERE t.subject_id = k.subject_id AND t.purpose = k.purpose AND t.channel = k.channel",
            [k.subject_id for k in keys],
            [k.purpose for k in keys],
            [k.channel or NO_CHANNEL for k in keys],
        )

    async def fresh_subjects(
        self,
        conn: asyncpg.Connection,
        subjects: Iterable[SubjectChanged],
        key: str = "subject_id",
        key_of: Callable[[SubjectChanged], str] = lambda s: s.subject_id,
    ) -> list[tuple[str, SubjectChanged]]:
        """(table key, event) for the subjects whose version beats the stored one."""
        latest = {key_of(s): s for s in latest_subjects(subjects).values()}
        if not latest:
            return []
        rows = await conn.fetch(
            f"SELECT {key} AS k, version FROM {self.schema}.subjects WHERE {key} = ANY($1::text[]) FOR UPDATE",
            list(latest),
        )
        stored = {r["k"]: r["version"] for r in rows}
        return [(k, s) for k, s in latest.items() if s.version > stored.get(k, 0)]
