"""The outbox relay: publishes committed outbox rows to Kafka in commit order per subject.

Woken by LISTEN/NOTIFY (with a slow poll as a safety net). Only one relay publishes at a
time (advisory lock), so per-subject order follows outbox ids, which the per-subject row
lock makes follow commit order. Rows are marked published only after Kafka acknowledged
them; a crash in between republishes them (at-least-once; consumers dedupe by version).
With Kafka down the rows wait and writes go on; the relay retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from samtykke.adapters.avro import AvroEncoder, RegistryError

from .metrics import ConsentMetrics
from .ports import Outbox

log = logging.getLogger(__name__)
RELAY_LOCK = 0x5A_4D_54_01


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: Outbox,
        producer_factory: Callable[[], AIOKafkaProducer],
        encoders: dict[str, AvroEncoder],
        metrics: ConsentMetrics,
        batch_size: int,
        idle_poll_seconds: float,
        provision: Callable[[], Awaitable[None]],
    ) -> None:
        self._pool = pool  # for the leader's LISTEN and advisory lock
        self._outbox = outbox
        self._new_producer = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._encoders = encoders
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle = idle_poll_seconds
        self._wake = asyncio.Event()
        self._provision = provision
        self._provisioned = False

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Run until cancelled; every failure is retried with capped backoff."""
        backoff = 0.2
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.relay_failures.inc()
                await self._drop_producer()
                log.warning("relay failed, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.2

    async def _lead(self) -> None:
        async with self._pool.acquire() as listener:
            try:
                await listener.execute("SELECT pg_advisory_lock($1)", RELAY_LOCK)
                await listener.add_listener("consent_outbox", self._notified)
                await self._ensure_ready()
                while True:
                    self._wake.clear()  # before reading, so a NOTIFY during the batch is not lost
                    published = await self.publish_batch()
                    if published < self._batch_size:
                        await self._wait_for_work()
            finally:
                try:
                    await listener.remove_listener("consent_outbox", self._notified)
                    await listener.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK)
                except BaseException:
                    # the pool does no full reset: a connection that may still hold the relay
                    # lock must never be handed to anyone else
                    listener.terminate()
                    raise

    async def _drop_producer(self) -> None:
        """A producer that failed is replaced: its buffers may hold sends we will redo."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as exc:  # already broken; we only want its resources back
                log.debug("discarding failed producer: %s", exc)

    async def stop(self) -> None:
        await self._drop_producer()

    async def _ensure_ready(self) -> None:
        if not self._provisioned:
            await self._provision()
            self._provisioned = True
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        for encoder in self._encoders.values():
            if not encoder.ready:
                await encoder.register()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._idle)

    async def publish_batch(self) -> int:
        producer = self._producer
        assert producer is not None
        messages = await self._outbox.pending_outbox(self._batch_size)
        if not messages:
            return 0
        futures = [
            await producer.send(m.topic, value=self._encode(m.schema_name, m.payload), key=m.key.encode())
            for m in messages
        ]
        await asyncio.gather(*futures)
        now = datetime.now(UTC)
        await self._outbox.mark_published([m.id for m in messages], now)
        for m in messages:
            self._metrics.published.labels(m.topic).inc()
            self._metrics.publish_latency.observe((now - m.created_at).total_seconds())
        return len(messages)

    def _encode(self, schema_name: str, payload: dict[str, Any]) -> bytes:
        encoder = self._encoders.get(schema_name)
        if encoder is None:  # an outbox row for a schema this build does not know: a bug
            raise RegistryError(f"no encoder for schema {schema_name}", retriable=False)
        return encoder.encode(payload)


async def outbox_status(pool: asyncpg.Pool) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT count(*) AS backlog, min(created_at) AS oldest FROM consent.outbox WHERE published_at IS NULL"
    )
    assert row is not None
    age = (datetime.now(UTC) - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    return {"backlog": row["backlog"], "oldest_age_seconds": round(age, 3)}


async def watch_outbox(pool: asyncpg.Pool, metrics: ConsentMetrics, every: float) -> None:
    """Keep the backlog gauges current on their own clock: a view the relay updated itself would
    freeze exactly when the relay is stuck, which is when the outbox alerts must see it grow."""
    while True:
        try:
            status = await outbox_status(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox status unavailable: %s", type(exc).__name__)
        else:
            metrics.outbox_backlog.set(status["backlog"])
            metrics.outbox_oldest_age.set(status["oldest_age_seconds"])
        await asyncio.sleep(every)
