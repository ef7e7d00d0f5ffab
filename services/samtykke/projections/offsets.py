"""Consumed positions kept in the projection's own schema, written in the batch's transaction.

This table, not Kafka's group offsets, says where a projector resumes: a batch's rows and its
offsets commit together, so after any crash the rows and the position agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from .messages import TopicPartition
from .projection import insert_rows, unnest


class OffsetStore:
    def __init__(self, schema: str) -> None:
        self._load = f"SELECT topic, partition, last_offset FROM {schema}.consumer_offsets"
        self._save = (
            f"INSERT INTO {schema}.consumer_offsets AS o (topic, partition, last_offset) "
            f"{unnest('text int bigint')} ON CONFLICT (topic, partition) DO UPDATE "
            "SET last_offset = EXCLUDED.last_offset, updated_at = now()"
        )

    async def load(self, conn: asyncpg.Connection | asyncpg.Pool) -> dict[TopicPartition, int]:
        return {(r["topic"], r["partition"]): r["last_offset"] for r in await conn.fetch(self._load)}

    async def save(self, conn: asyncpg.Connection, positions: Mapping[TopicPartition, int]) -> None:
        await insert_rows(conn, self._save, [(t, p, o) for (t, p), o in positions.items()], 3)

    @staticmethod
    def next_positions(
        stored: Mapping[TopicPartition, int], partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        """Where to resume each partition: after the last applied offset; None = from the start."""
        return {tp: (stored[tp] + 1 if tp in stored else None) for tp in partitions}
