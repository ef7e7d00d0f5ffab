"""Watermarks for a benchmark's own topic pair.

The suppression service is fresh only through the relay's watermarks ("every change committed
before T is below these offsets"). A benchmark produces its history straight to a topic pair of
its own, where no relay publishes: this stands in for it, publishing every half second that
everything on the pair so far is below its current end offsets, on a watermarks topic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options, create_topics, idempotent_producer
from samtykke.adapters.settings import Settings
from samtykke.consent.watermarks import WATERMARK_SCHEMA, TopicEnds, WatermarkPublisher

EVERY_SECONDS = 0.5


def watermarks_topic(topics: tuple[str, str]) -> str:
    return f"{topics[0].removesuffix('.consent.changes')}.consent.watermarks"


@contextlib.asynccontextmanager
async def bench_watermarks(settings: Settings, topics: tuple[str, str]) -> AsyncIterator[str]:
    """Publish watermarks over `topics` while the block runs; yields the watermarks topic."""
    kafka = client_options(settings)
    topic = watermarks_topic(topics)
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await create_topics(admin, [NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    registry = SchemaRegistry.from_settings(settings)
    encoder = AvroEncoder(registry, topic, load_schema(settings.schema_dir, WATERMARK_SCHEMA))
    await encoder.register()
    ends = TopicEnds(kafka, topics)
    publisher = WatermarkPublisher(topic, encoder, ends)
    producer = idempotent_producer(kafka)
    await ends.start()
    await producer.start()

    async def publish() -> None:
        while True:  # the producer is the benchmark's, done before: what is on the topics is all there is
            await publisher.publish(producer, datetime.now(UTC), frozenset(), 0)
            await asyncio.sleep(EVERY_SECONDS)

    task = asyncio.create_task(publish())
    try:
        yield topic
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        await ends.stop()
        await registry.aclose()
