"""The projector's reader of the watermark topic: a group-less consumer of its one partition(s),
from the newest record on, feeding `CompletenessRecorder`; on a quiet topic it records what the
stored positions already reach every second, so "complete through" keeps up with the relay.

Error policy: an unreadable watermark is logged and skipped (the domain only looks older); the
registry or Kafka failing is retried; the topic not existing yet is waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from samtykke.adapters.avro import AvroDecoder, RegistryError, UndecodableMessage
from samtykke.adapters.kafka import KafkaOptions, extend_assignment, present_partitions
from samtykke.domain.freshness import Watermark

from .completeness import CompletenessRecorder

log = logging.getLogger(__name__)
RECORD_EVERY = 1.0


class WatermarkReader:
    def __init__(
        self,
        kafka: KafkaOptions,
        topic: str,
        decoder: AvroDecoder,
        recorder: CompletenessRecorder,
        pool: asyncpg.Pool,
        recorded: Callable[[], Awaitable[None]],
    ) -> None:
        self._kafka, self._topic = kafka, topic
        self._decoder = decoder
        self._recorder = recorder
        self._pool = pool
        self._recorded = recorded

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(**self._kafka, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            while not (partitions := await present_partitions(self._kafka, [self._topic])):
                await asyncio.sleep(RECORD_EVERY)  # the relay creates it; stale meanwhile
            ends, starts = await consumer.end_offsets(partitions), await consumer.beginning_offsets(partitions)
            await extend_assignment(consumer, partitions, {tp: max(starts[tp], ends[tp] - 1) for tp in partitions})
            while True:
                batches = await consumer.getmany(timeout_ms=int(RECORD_EVERY * 1000))
                for messages in batches.values():
                    for message in messages:
                        await self._saw(message.value, message.offset)
                await self._record()
        finally:
            await consumer.stop()

    async def _saw(self, value: bytes | None, offset: int) -> None:
        if value is None:
            return
        backoff = 0.2
        while True:
            try:
                self._recorder.saw(Watermark.from_record(await self._decoder.decode(value)))
                return
            except RegistryError as exc:
                log.warning("watermark: schema registry: %s; retrying in %.1fs", str(exc)[:200], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except (UndecodableMessage, KeyError, TypeError, ValueError) as exc:
                log.error("unreadable watermark at %s@%d: %s", self._topic, offset, type(exc).__name__)
                return

    async def _record(self) -> None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._recorder.record(conn)
            await self._recorded()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not record completeness (%s); retrying", type(exc).__name__)


async def supervised(reader: WatermarkReader) -> None:
    """Keep reading through Kafka errors: while it does not, the domain only looks older."""
    while True:
        try:
            await reader.run()
        except (KafkaError, OSError) as exc:
            log.warning("watermark reader failed (%s); restarting in 1s", type(exc).__name__)
            await asyncio.sleep(1.0)
