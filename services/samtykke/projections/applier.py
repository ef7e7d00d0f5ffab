"""Applies one consumed batch: decode, dead-letter the poison, then rows + offsets (+ the watermark they
reach, when the projector reads watermarks) in one transaction.

Used by the Faust projector and by the rebuild alike. The transaction starts with a shared
advisory lock on the domain, so a rebuild's switch-over (which takes it exclusively) sees no
batch half-way. Positions cover every message of the batch, poison included, so a dead-lettered
message is not consumed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

import asyncpg

from samtykke.domain.consent_keys import ConsentKey
from samtykke.domain.events import ConsentChanged

from .completeness import CompletenessRecorder
from .dead_letters import DeadLetterQueue
from .decoding import EventDecoder
from .messages import Applied, Batch, PoisonMessage, RawMessage
from .metrics import ProjectionMetrics
from .offsets import OffsetStore
from .projection import Projection
from .retry import with_backoff

log = logging.getLogger(__name__)


class BatchApplier:
    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        decoder: EventDecoder,
        dead_letters: DeadLetterQueue,
        metrics: ProjectionMetrics,
        lock_key: int,
        completeness: CompletenessRecorder | None = None,
    ) -> None:
        self._pool = pool
        self.completeness = completeness
        self.projection = projection
        self.offsets = OffsetStore(projection.schema)
        self._decoder = decoder
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._lock_key = lock_key
        self.dead_lettered = 0

    async def apply(self, messages: Sequence[RawMessage]) -> Batch:
        batch = await self._decode(messages)
        for message, poison in batch.poison:
            await with_backoff(partial(self._dead_letters.put, message, poison), "dead_letter", self._metrics)
            self._metrics.dead_letters.labels(self._metrics.domain, poison.kind.value).inc()
            self.dead_lettered += 1
            log.warning(
                "dead-lettered %s[%d]@%d to %s: %s",
                message.topic,
                message.partition,
                message.offset,
                self._dead_letters.topic,
                poison.kind.value,
            )
        started = time.perf_counter()
        applied = await with_backoff(partial(self._commit, batch), "database", self._metrics)
        self._observe(messages, batch, applied, time.perf_counter() - started)
        return batch

    async def _decode(self, messages: Sequence[RawMessage]) -> Batch:
        batch = Batch()
        for message in messages:
            batch.positions[message.position] = message.offset
            try:
                event = await with_backoff(partial(self._decoder.decode, message), "decode", self._metrics)
            except PoisonMessage as poison:
                batch.poison.append((message, poison))
                continue
            if isinstance(event, ConsentKey):
                batch.add_removal(event)
            elif isinstance(event, ConsentChanged):
                batch.changes.append(event)
            else:
                batch.subjects.append(event)
        return batch

    async def _commit(self, batch: Batch) -> Applied:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", self._lock_key)
            applied = Applied([], 0)
            for step, removed in batch.in_order():
                done = await self.projection.apply(conn, step)
                applied = Applied(applied.changes + done.changes, applied.subjects + done.subjects)
                if removed:
                    await self.projection.remove(conn, removed)
            await self.offsets.save(conn, batch.positions)
            if self.completeness is not None:
                await self.completeness.record(conn)
        return applied

    def _observe(self, messages: Sequence[RawMessage], batch: Batch, applied: Applied, seconds: float) -> None:
        m, domain = self._metrics, self._metrics.domain
        now = datetime.now(UTC)
        for change in applied.changes:
            m.propagation.labels(domain).observe(max(0.0, (now - change.recorded_at).total_seconds()))
        consumed: dict[str, int] = {}
        for message in messages:
            consumed[message.topic] = consumed.get(message.topic, 0) + 1
        changes_topic = self._decoder.changes_topic
        for topic, count in consumed.items():
            applied_here = len(applied.changes) if topic == changes_topic else applied.subjects
            poison_here = sum(1 for p, _ in batch.poison if p.topic == topic)
            m.events.labels(domain, topic, "applied").inc(applied_here)
            m.events.labels(domain, topic, "dead_letter").inc(poison_here)
            m.events.labels(domain, topic, "unchanged").inc(count - applied_here - poison_here)
        m.batch_size.labels(domain).observe(len(messages))
        m.commit_seconds.labels(domain).observe(seconds)
