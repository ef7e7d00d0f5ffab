"""The outbox on PostgreSQL: what the relay reads and settles, and the dead letters it sets aside."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from .ports import DeadLetteredMessage, OutboxMessage, OutboxSnapshot

_MESSAGE = "id, topic, message_key, schema_name, payload, created_at"

# A row leaves the outbox for the dead letters only while still unpublished, so a second relay
# that published it meanwhile keeps it where it is.
_MOVE_TO_DEAD_LETTERS = (
    "WITH reasons AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS r(id, reason)), "
    "moved AS (DELETE FROM consent.outbox o USING reasons r WHERE o.id = r.id AND o.published_at IS NULL "
    f"RETURNING o.{_MESSAGE.replace(', ', ', o.')}, r.reason) "
    f"INSERT INTO consent.outbox_dead_letters ({_MESSAGE}, reason, dead_lettered_at) "
    f"SELECT {_MESSAGE}, reason, $3 FROM moved ON CONFLICT (id) DO NOTHING"
)
_REQUEUE = (
    "WITH dead AS (DELETE FROM consent.outbox_dead_letters WHERE id = $1 RETURNING *) "
    "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
    f"SELECT topic, message_key, schema_name, payload FROM dead RETURNING {_MESSAGE}"
)


def _message(row: asyncpg.Record) -> OutboxMessage:
    return OutboxMessage(
        row["id"], row["topic"], row["message_key"], row["schema_name"], row["payload"], row["created_at"]
    )


class PostgresOutbox:
    """Needs a pool whose connections decode json/jsonb (`adapters.postgres.create_pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def pending_outbox(self, limit: int) -> list[OutboxMessage]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE} FROM consent.outbox WHERE published_at IS NULL ORDER BY id LIMIT $1", limit
        )
        return [_message(r) for r in rows]

    async def snapshot(self, limit: int) -> OutboxSnapshot:
        # transaction_timestamp() is fixed when the transaction begins, before its first statement takes
        # the snapshot: a commit acknowledged before that instant is visible here, pending or published
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            # held are subjects: a consent key's first part (`domain.consent_keys.subject_of_key`)
            taken_at, held = await conn.fetchrow(
                "SELECT transaction_timestamp(), ARRAY(SELECT DISTINCT split_part(message_key, '/', 1) "
                "FROM consent.outbox_dead_letters)"
            )
            rows = await conn.fetch(
                f"SELECT {_MESSAGE} FROM consent.outbox WHERE published_at IS NULL ORDER BY id LIMIT $1", limit + 1
            )
        return OutboxSnapshot(taken_at, [_message(r) for r in rows[:limit]], len(rows) <= limit, frozenset(held))

    async def mark_published(self, ids: Sequence[int], at: datetime) -> None:
        await self._pool.execute(
            "UPDATE consent.outbox SET published_at = $2 WHERE id = ANY($1::bigint[])", list(ids), at
        )

    async def settle(self, published: Sequence[int], dead: Sequence[tuple[int, str]], at: datetime) -> None:
        if not dead:  # one statement is its own transaction: one round trip, not three
            await self.mark_published(published, at)
            return
        async with self._pool.acquire() as conn, conn.transaction():
            if published:
                await conn.execute(
                    "UPDATE consent.outbox SET published_at = $2 WHERE id = ANY($1::bigint[])", list(published), at
                )
            if dead:
                await conn.execute(_MOVE_TO_DEAD_LETTERS, [i for i, _ in dead], [r for _, r in dead], at)

    async def dead_letters(self) -> list[DeadLetteredMessage]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE}, reason, dead_lettered_at FROM consent.outbox_dead_letters ORDER BY id"
        )
        return [DeadLetteredMessage(_message(r), r["reason"], r["dead_lettered_at"]) for r in rows]

    async def requeue_dead_letter(self, message_id: int) -> OutboxMessage | None:
        row = await self._pool.fetchrow(_REQUEUE, message_id)
        return None if row is None else _message(row)

    async def discard_dead_letter(self, message_id: int) -> bool:
        result: str = await self._pool.execute("DELETE FROM consent.outbox_dead_letters WHERE id = $1", message_id)
        return result.split()[-1] != "0"

    async def discard_published_outbox(self, before: datetime) -> int:
        result: str = await self._pool.execute("DELETE FROM consent.outbox WHERE published_at < $1", before)
        return int(result.split()[-1])
