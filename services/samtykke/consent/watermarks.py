"""The watermark the relay publishes: "every change committed before T is on these partitions below
these offsets" (`domain.freshness.Watermark`), on a compacted one-partition topic under one key.

The end offsets are read after everything pending in T's snapshot was acknowledged, for every
partition of the contract topics as fresh metadata lists them (partitions added at run time too).
Each watermark is a CloudEvent of its own (`adapters.cloudevents`): a fresh id, its publication time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from samtykke.adapters import cloudevents
from samtykke.adapters.avro import AvroEncoder
from samtykke.adapters.kafka import KafkaOptions
from samtykke.domain.freshness import Watermark

WATERMARK_KEY = b"consent"
WATERMARK_SCHEMA = "Watermark"


class TopicsUnavailable(RuntimeError):
    """A contract topic has no partitions in the metadata: no watermark can cover it."""


class TopicEnds:
    """End offsets of every partition of some topics, from fresh metadata each time."""

    def __init__(self, kafka: KafkaOptions, topics: Sequence[str]) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self._admin is not None:
            return
        admin = AIOKafkaAdminClient(**self._kafka, request_timeout_ms=5000)
        consumer = AIOKafkaConsumer(**self._kafka, enable_auto_commit=False, request_timeout_ms=5000)
        try:
            await admin.start()
            await consumer.start()
        except BaseException:
            await consumer.stop()
            await admin.close()
            raise
        self._admin, self._consumer = admin, consumer

    async def stop(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def read(self) -> dict[tuple[str, int], int]:
        assert self._admin is not None and self._consumer is not None, "start() first"
        # named topics: the relay provisioned them before it leads, so naming them creates nothing
        described = {t["topic"]: t for t in await self._admin.describe_topics(self._topics)}
        partitions = []
        for topic in self._topics:
            found = described.get(topic)
            if found is None or found.get("error_code") or not found.get("partitions"):
                raise TopicsUnavailable(f"no partitions of {topic} in the metadata")
            partitions += [TopicPartition(topic, int(p["partition"])) for p in found["partitions"]]
        ends = await self._consumer.end_offsets(partitions)
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}


class WatermarkPublisher:
    def __init__(self, topic: str, encoder: AvroEncoder, ends: TopicEnds) -> None:
        self.topic = topic
        self.encoder = encoder
        self.ends = ends

    async def publish(
        self, producer: AIOKafkaProducer, through: datetime, held: frozenset[str], epoch: int
    ) -> Watermark:
        """Call only once every change visible at `through` is acknowledged: the ends read now cover it."""
        watermark = Watermark(through, await self.ends.read(), held, epoch)
        now = datetime.now(UTC)
        value = self.encoder.encode(watermark.as_record(now))
        headers = cloudevents.cloud_event_headers(cloudevents.EventType.WATERMARK, cloudevents.CONSENT_SERVICE, now)
        await (await producer.send(self.topic, value=value, key=WATERMARK_KEY, headers=headers))
        return watermark
