"""How far a domain's tables are complete, end to end: the newest watermark its stored positions reach.

Watermarks come from the consent service's relay (`domain.freshness`). Positions are those in
`{schema}.consumer_offsets`, which every projector instance of the domain writes: so the
question is asked of the table, inside the transaction that moved it, and the answer is written
there too (`{schema}.completeness`), never backwards.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from samtykke.domain.freshness import Completeness, Watermark

from .offsets import OffsetStore


class CompletenessRecorder:
    def __init__(self, schema: str) -> None:
        self.completeness = Completeness()
        self._offsets = OffsetStore(schema)
        self._upsert = (
            f"INSERT INTO {schema}.completeness AS c (through) VALUES ($1) ON CONFLICT (domain) DO UPDATE "
            "SET through = GREATEST(c.through, EXCLUDED.through), updated_at = now() RETURNING c.through"
        )
        self._read = f"SELECT through FROM {schema}.completeness"
        self.through: datetime | None = None  # as last written (by any instance)

    def saw(self, watermark: Watermark) -> None:
        self.completeness.saw(watermark)

    async def record(self, conn: asyncpg.Connection) -> datetime | None:
        """In the caller's transaction, after its positions: note the newest watermark they reach."""
        stored = await self._offsets.load(conn)
        reached = self.completeness.advance({tp: last + 1 for tp, last in stored.items()})
        if reached is None:
            return None
        through: datetime = await conn.fetchval(self._upsert, reached.through)
        self.through = through
        return through

    async def read(self, conn: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
        through: datetime | None = await conn.fetchval(self._read)
        return through
