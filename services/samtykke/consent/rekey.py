"""`samtykke consent rekey`: re-encrypt every stored clear identifier under the current key.

Run after putting a new `identifier_encryption_key` in front and the old one into
`identifier_encryption_retired_keys`; when it reports zero left under retired keys, the retired keys can
be removed. Batches are keyed by subject id, each one transaction, so a rerun after an interruption
simply continues (re-sealing an already current value is harmless).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from samtykke.adapters.postgres import create_pool
from samtykke.adapters.settings import Settings
from samtykke.adapters.vault import IdentifierVault

log = logging.getLogger(__name__)
BATCH = 1000
COLUMNS = ("phone_enc", "email_enc", "national_id_enc")

SELECT = (
    f"SELECT subject_id, {', '.join(COLUMNS)} FROM consent.subjects "
    "WHERE subject_id > $1 AND (phone_enc IS NOT NULL OR email_enc IS NOT NULL OR national_id_enc IS NOT NULL) "
    "ORDER BY subject_id LIMIT $2 FOR UPDATE"
)
UPDATE = (
    "UPDATE consent.subjects s SET phone_enc = u.phone, email_enc = u.email, national_id_enc = u.national_id "
    "FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(subject_id, phone, email, national_id) "
    "WHERE s.subject_id = u.subject_id"
)


@dataclass(frozen=True)
class RekeyReport:
    subjects: int
    values: int


async def rekey(pool: asyncpg.Pool, vault: IdentifierVault, batch: int = BATCH) -> RekeyReport:
    after = UUID(int=0)
    subjects = values = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(SELECT, after, batch)
            if not rows:
                return RekeyReport(subjects, values)
            sealed = [[vault.reseal(r[c]) for c in COLUMNS] for r in rows]
            ids = [r["subject_id"] for r in rows]
            await conn.execute(UPDATE, ids, *[list(col) for col in zip(*sealed, strict=True)])
        subjects += len(rows)
        values += sum(v is not None for row in sealed for v in row)
        after = ids[-1]
        log.info("re-encrypted %d subjects (%d values) so far", subjects, values)


async def run(settings: Settings) -> RekeyReport:
    vault = IdentifierVault(settings.identifier_encryption_key, settings.identifier_encryption_retired_keys)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return await rekey(pool, vault)
    finally:
        await pool.close()
